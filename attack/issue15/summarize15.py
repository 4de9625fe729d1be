#!/usr/bin/env python3
"""One line per saved result and phase: probe and subscriber latency
(p50/p99/max ms), RSS start/peak/end, CPU, for target and control."""
import glob
import json
import os

import lib15

for path in sorted(glob.glob(os.path.join(lib15.RESULTS, "*.json"))):
    r = json.load(open(path))
    print(f"## {r['tag']}")
    for who in ("target", "control"):
        for phase, ph in r.get(who, {}).items():
            if phase == "subs_final":
                continue
            rss = ph.get("rss_kb", {})
            subs = " ".join(f"{k}={lib15.fmt_lat(v)}" for k, v in ph.items() if k.startswith("sub"))
            print(f"  {who[0]} {phase:13} probe {lib15.fmt_lat(ph['probe'])} fail {ph['probe']['fail']}"
                  f"/{ph['probe']['n']} rss {rss.get('start')}/{rss.get('peak')}/{rss.get('end')}"
                  f" cpu {ph.get('cpu_pct')} {subs}")
