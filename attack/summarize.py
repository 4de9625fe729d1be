#!/usr/bin/env python3
"""Prints one markdown row per result in attack/results/*.json: probe latency
(baseline → attack, ms), the unattacked control server's latency during the
attack, failures, RSS (start → peak → end of the attack, then end of after),
CPU and run-queue wait."""
import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def f(x):
    return "–" if x is None else (f"{x:g}" if isinstance(x, (int, float)) else str(x))


print("| run | baseline p50/p99/max ms | attack p50/p99/max ms (fail/probes) | control during attack p50/p99 ms "
      "| RSS MB attack start→peak→end; after end | CPU % (+runq wait %) |")
print("|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(HERE, "results", "*.json"))):
    r = json.load(open(path))
    b, a, af = r["phases"]["baseline"], r["phases"]["attack"], r["phases"]["after"]
    c = r.get("control_server_probe", {}).get("attack", {})
    tag = os.path.basename(path)[:-5]
    print(f"| {tag} | {f(b['p50_ms'])}/{f(b['p99_ms'])}/{f(b['max_ms'])} "
          f"| {f(a['p50_ms'])}/{f(a['p99_ms'])}/{f(a['max_ms'])} ({a['fail']}/{a['probes']}) "
          f"| {f(c.get('p50_ms'))}/{f(c.get('p99_ms'))} "
          f"| {f(a.get('rss_start_mb'))}→{f(a.get('rss_peak_mb'))}→{f(a.get('rss_end_mb'))}; "
          f"{f(af.get('rss_end_mb'))} "
          f"| {f(a.get('cpu_pct'))} (+{f(a.get('runq_wait_pct'))}) |")
