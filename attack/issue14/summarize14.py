#!/usr/bin/env python3
"""One markdown row per saved result (results/*.json): attack, server
RSS idle -> peak -> after, HWM, CPU, probe RTT p50/p99/max (and the
control's when run with --control)."""
import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def probe(p):
    if not p or "p50_ms" not in p:
        return "-" if not p else f"fail {p.get('fail')}"
    return f"{p['p50_ms']}/{p['p99_ms']}/{p['max_ms']}" + (f" ({p['fail']} fail)" if p["fail"] else "")


print("| tag | RSS idle→peak→after (MB) | HWM | CPU % (s) | runq % | probe p50/p99/max ms | control |")
print("|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(HERE, "results", "*.json"))):
    if f.endswith(".probe.json"):
        continue
    r = json.load(open(f))
    m = r.get("mon_attack") or {}
    tag = os.path.basename(f)[:-5]
    died = " **died**" if r.get("server_died") is not None else ""
    print(f"| {tag}{died} | {round((r.get('idle_rss_kb') or 0) / 1024, 1)}→{m.get('rss_peak_mb')}→"
          f"{round((r.get('after_rss_kb') or 0) / 1024, 1)} | {m.get('hwm_mb')} | "
          f"{m.get('cpu_pct')} ({m.get('cpu_s')}) | {m.get('runq_wait_pct')} | {probe(r.get('probe'))} | "
          f"{probe(r.get('control_probe'))} |")
