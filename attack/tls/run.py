#!/usr/bin/env python3
"""python3 run.py ATTACK [key=value ...]; harness keys: kind= cert= tag= baseline= after= probes=ka,fresh"""
import sys
import harness
import attacks


def val(v):
    for f in (int, float):
        try:
            return f(v)
        except ValueError:
            pass
    return v


def main():
    name = sys.argv[1]
    kw = dict(a.split("=", 1) for a in sys.argv[2:])
    kw = {k: val(v) for k, v in kw.items()}
    h = {k: kw.pop(k) for k in ("kind", "cert", "tag", "baseline", "after") if k in kw}
    if "probes" in kw:
        p = kw.pop("probes")
        h["probes"] = tuple(x for x in str(p).split(",") if x and x != "none")
    h.setdefault("tag", name)
    harness.run(attack=getattr(attacks, name), **h, **kw)


if __name__ == "__main__":
    main()
