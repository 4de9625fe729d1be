#!/usr/bin/env python3
"""One line per saved result: baseline and attack probe latencies, RSS, CPU."""
import glob, json, os, sys
rows = []
for f in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "*.json"))):
    r = json.load(open(f))
    b = r["phases"].get("baseline") or r["phases"].get("start")
    a = r["phases"].get("attack")
    if not a:
        continue
    def lat(ph, m):
        p = ph.get(m) if ph else None
        if not p or p["n"] == 0:
            return "-"
        return f"{p['p50']}/{p['p99']}/{round(p['max'],1) if p['max'] else '-'} ({p['fail']}/{p['n']} fail)"
    rss = a.get("rss_kb")
    print(f"| {r['tag']} | {lat(b,'ka')} | {lat(a,'ka')} | {lat(a,'fresh')} | "
          f"{rss[0]/1024:.1f}->{rss[1]/1024:.1f} MB | {a.get('cpu_pct')}% + {a.get('wait_pct')}% |" if rss else f"| {r['tag']} | - |")
