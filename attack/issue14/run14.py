#!/usr/bin/env python3
"""Runs one issue-14 attack against a fresh server and prints/saves its numbers.

  python3 attack/issue14/run14.py --list
  python3 attack/issue14/run14.py NAME [key=value ...] [--takeover] [--tag TAG]
                                  [--target14 'ENV=V ENV2=V2'] [--as-limit MB]

The server is `target/release/pollserve demo` (`--takeover` adds
`--deflate-context-takeover`), or with `--target14` the small library program
in target14/ (built into target/release/target14) with those environment
settings. During the attack the normal client (probe14.py) makes 200 echo
round trips on its own /ws/echo (or /ws) connection; the monitor samples the
server's VmRSS/VmHWM/CPU every 100 ms. Results: results/TAG.json.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attacks14  # noqa: E402
from lib14 import (ROOT, Probe, Server, fmt_mon, fmt_probe, mono, raise_fd_limit,  # noqa: E402
                   save)


def parse_kv(items, defaults):
    p = dict(defaults)
    for it in items:
        k, _, v = it.partition("=")
        if k not in p:
            raise SystemExit(f"unknown parameter {k} (have {sorted(p)})")
        t = type(p[k])
        p[k] = (v.lower() in ("1", "true", "yes")) if t is bool else t(v)
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name", nargs="?")
    ap.add_argument("kv", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--takeover", action="store_true")
    ap.add_argument("--tag")
    ap.add_argument("--target14", default=None)
    ap.add_argument("--as-limit", type=int, default=16384,
                    help="server RLIMIT_AS in MB (a runaway aborts the server, not the machine)")
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--server-args", default="", help="extra arguments for `pollserve demo`")
    ap.add_argument("--after", type=float, default=3.0)
    ap.add_argument("--control", action="store_true",
                    help="also run an unattacked twin server with its own probe (machine noise)")
    a = ap.parse_args()
    if a.list or not a.name:
        for n, (fn, d) in attacks14.ATTACKS.items():
            doc = (fn.__doc__ or "").strip().splitlines()[0]
            print(f"{n:24s} {doc}  {d}")
        return
    fn, defaults = attacks14.ATTACKS[a.name]
    p = parse_kv(a.kv, defaults)
    tag = a.tag or (a.name + ("_takeover" if a.takeover else ""))
    raise_fd_limit()
    env = None
    if a.target14 is not None:
        env = dict(kv.split("=", 1) for kv in a.target14.split())
        args = [os.path.join(ROOT, "target/release/target14"), "{port}"]
        srv = Server(tag, args=args, as_limit_mb=a.as_limit, env=env)
        path = "/ws"
    else:
        srv = Server(tag, takeover=a.takeover, as_limit_mb=a.as_limit, extra=a.server_args.split())
        path = "/ws/echo"
    ctx = attacks14.Ctx(srv, p, path, takeover=a.takeover, env=env)
    time.sleep(1.0)
    t_idle = mono()
    idle = srv.mem()
    probe = None
    ctl = ctl_probe = None
    if a.control:
        ctl = Server(tag + ".control", takeover=a.takeover, as_limit_mb=a.as_limit,
                     extra=a.server_args.split() if a.target14 is None else (),
                     args=srv.args[:1] + ["{port}"] if a.target14 is not None else None, env=env)
    if not (a.no_probe or getattr(fn, "no_probe", False)):
        probe = Probe(srv.port, tag, path=path, delay=getattr(fn, "probe_delay", 0.0))
        ctx.probe = probe
        if ctl:
            ctl_probe = Probe(ctl.port, tag + ".control", path=path)
    t0 = mono()
    err = None
    try:
        fn(ctx)
    except Exception as e:  # the record says what failed; the server is stopped below
        import traceback
        traceback.print_exc()
        err = f"{type(e).__name__}: {e}"
    t1 = mono()
    pr = probe.result() if probe else None
    cpr = ctl_probe.result() if ctl_probe else None
    if ctl:
        ctl.stop()
    t2 = mono()
    time.sleep(a.after)
    t3 = mono()
    after = srv.mem()
    died = srv.stop()
    res = {
        "attack": a.name, "params": p, "takeover": a.takeover, "target14": env,
        "server_pid": srv.pid, "server_died": died,
        "idle_rss_kb": idle[0] if idle else None,
        "after_rss_kb": after[0] if after else None, "after_hwm_kb": after[1] if after else None,
        "attack_secs": round(t1 - t0, 1),
        "mon_attack": srv.mon.window(t0, max(t1, t2)),
        "mon_after": srv.mon.window(t2, t3),
        "probe": pr, "control_probe": cpr, "notes": ctx.notes, "error": err,
    }
    save(tag, res)
    print(f"== {tag}: attack {res['attack_secs']} s, server "
          f"{'DIED rc=' + str(died) if died is not None else 'alive'}")
    print(f"   idle RSS {round((idle[0] if idle else 0) / 1024, 1)} MB; during: {fmt_mon(res['mon_attack'])}")
    print(f"   after {a.after}s: RSS {round((after[0] if after else 0) / 1024, 1)} MB HWM "
          f"{round((after[1] if after else 0) / 1024, 1)} MB")
    if pr:
        print(f"   {fmt_probe(pr)}  {pr.get('errors') or ''}")
    if cpr:
        print(f"   control {fmt_probe(cpr)}")
    for k, v in ctx.notes.items():
        if k == "cases":
            for name, c in v.items():
                print(f"     {name:36s} {c}")
            continue
        print(f"   {k}: {v}")
    if err:
        print(f"   ERROR {err}")


if __name__ == "__main__":
    main()
