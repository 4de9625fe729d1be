#!/usr/bin/env python3
"""Runs one attack against a fresh pollserve and measures it.

    python3 attack/run.py NAME [--baseline S] [--after S] [key=value ...]
    python3 attack/run.py --list

Starts the server (demo or serve, as the attack asks), the probe/monitor
process (attack/probe.py), measures a baseline with no attack, runs the
attack (bounded in time), keeps measuring for a while after it, stops
everything and prints/saves per-phase numbers: probe latency p50/p99/max and
failures, server RSS start/peak/end, server CPU, server descriptors.
Results: attack/results/NAME.json (+ the probe log and server stderr).
"""
import argparse
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import attacks  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name", nargs="?")
    ap.add_argument("params", nargs="*", help="key=value overrides of the attack's parameters")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--baseline", type=float, default=None)
    ap.add_argument("--after", type=float, default=None)
    ap.add_argument("--tag", default=None)
    a = ap.parse_args()
    if a.list or not a.name:
        for name, spec in attacks.REGISTRY.items():
            print(f"{name:24s} {spec['doc']}")
        return 0
    spec = attacks.REGISTRY[a.name]
    params = dict(spec["params"])
    for kv in a.params:
        k, _, v = kv.partition("=")
        params[k] = type(params[k])(v) if k in params and not isinstance(params[k], bool) else (
            v.lower() in ("1", "true", "yes") if isinstance(params.get(k), bool) else v)
    lib.raise_fd_limit()
    tag = a.tag or a.name
    baseline = a.baseline if a.baseline is not None else spec["baseline"]
    after = a.after if a.after is not None else spec["after"]
    target_kw = dict(spec["target"])
    if "prepare" in spec:
        target_kw.update(spec["prepare"](params))
    t = lib.Target(tag=tag, **target_kw)
    notes = {}
    err = None
    try:
        time.sleep(0.7)
        t.mark("baseline")
        time.sleep(baseline)
        t.mark("attack")
        print(f"[{a.name}] attack starts (params {params})", flush=True)
        try:
            notes = spec["fn"](t, params) or {}
        except Exception:  # noqa: BLE001
            err = traceback.format_exc()
            print(err, file=sys.stderr)
        t.mark("after")
        time.sleep(after)
        t.mark("end")
    finally:
        server_alive = t.stop()
    recs = t.records()
    m = t.marks
    phases = {
        "baseline": lib.phase_stats(recs, m["baseline"], m["attack"]),
        "attack": lib.phase_stats(recs, m["attack"], m.get("after", m["attack"])),
        "after": lib.phase_stats(recs, m.get("after", m["attack"]), m.get("end", lib.mono())),
    }
    crecs = t.control_records()
    control = {}
    if crecs:
        for k, (a0, a1) in {"baseline": (m["baseline"], m["attack"]),
                            "attack": (m["attack"], m.get("after", m["attack"])),
                            "after": (m.get("after", m["attack"]), m.get("end", lib.mono()))}.items():
            cs = lib.phase_stats(crecs, a0, a1)
            control[k] = {x: cs[x] for x in ("probes", "fail", "p50_ms", "p99_ms", "max_ms")}
    result = {
        "attack": a.name,
        "doc": spec["doc"],
        "params": params,
        "server": spec["target"].get("mode", "demo"),
        "server_alive_at_end": server_alive,
        "phases": phases,
        "control_server_probe": control,
        "notes": notes,
        "error": err,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with open(os.path.join(lib.RESULTS, f"{tag}.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"== {a.name}: {spec['doc']}")
    for k, s in phases.items():
        print("  " + lib.fmt_phase(k, s))
    for k, c in control.items():
        print(f"  control {k:9s} (unattacked server, same machine): probes={c['probes']} "
              f"fail={c['fail']} p50={c['p50_ms']}ms p99={c['p99_ms']}ms max={c['max_ms']}ms")
    print(f"  server alive at end: {server_alive}")
    print("  notes: " + json.dumps(notes, indent=None)[:6000])
    return 0 if err is None else 1


if __name__ == "__main__":
    sys.exit(main())
