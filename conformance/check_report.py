#!/usr/bin/env python3
"""Check an Autobahn|Testsuite fuzzingclient report and fail on bad results.

Reads OUT_DIR/index.json (written by `wstest -m fuzzingclient`) and exits
non-zero if anything is wrong. wstest itself exits 0 even when it could not
connect at all, so this checker is what decides pass/fail.

Per-case classification (mirrors the colours of Autobahn's own HTML report):

  behavior       OK -> OK, NON-STRICT -> NON-STRICT, INFORMATIONAL -> INFORMATIONAL,
                 FAILED / UNIMPLEMENTED / anything else -> FAILED
  behaviorClose  OK, INFORMATIONAL -> OK,
                 WRONG CODE, FAILED BY CLIENT -> NON-STRICT,
                 FAILED / UNCLEAN / anything else -> FAILED

A case's status is the worse of the two. FAILED always fails the run;
NON-STRICT fails it only with --strict. INFORMATIONAL never fails.

The run also fails when:
  * an expected case is missing from the report (expected = the case list
    wstest announced in its log, see --wstest-log, and/or --expected-cases),
  * fewer cases were found than --expected-count / --min-cases (min default 1,
    so an empty report - e.g. nothing listening - always fails),
  * the agent is absent from index.json.
Cases matching --exclude patterns are ignored everywhere.

The last line printed is "autobahn: N passed, M failed" (M counts failing and
missing cases, or 1 for a report that is unusable as a whole).

Exit codes: 0 pass, 1 conformance failure, 2 usage / unreadable report.
Stdlib only; any Python >= 3.6 works.
"""

import argparse
import ast
import json
import os
import re
import sys
from collections import Counter

ORDER = {"OK": 0, "INFORMATIONAL": 1, "NON-STRICT": 2, "FAILED": 3}

BEHAVIOR_MAP = {"OK": "OK", "NON-STRICT": "NON-STRICT", "INFORMATIONAL": "INFORMATIONAL"}
CLOSE_MAP = {
    "OK": "OK",
    "INFORMATIONAL": "OK",
    "WRONG CODE": "NON-STRICT",
    "FAILED BY CLIENT": "NON-STRICT",
}


def case_key(case_id):
    """'1.2.10' -> (1, 2, 10) for natural sorting; non-numeric parts sort last."""
    out = []
    for part in str(case_id).split("."):
        out.append(int(part) if part.isdigit() else 10 ** 9)
    return tuple(out)


def pattern_regex(patterns):
    """Autobahn-style case patterns ('1.*', '9.7.3') -> one anchored regex."""
    alts = []
    for p in patterns:
        p = p.strip()
        if p:
            alts.append(re.escape(p).replace(r"\*", ".*"))
    if not alts:
        return None
    return re.compile("^(?:%s)$" % "|".join(alts))


def split_patterns(s):
    return [x.strip() for x in (s or "").split(",") if x.strip()]


def cases_from_wstest_log(path):
    """Return the list after 'Cases = [...]' in wstest's stdout, or None."""
    with open(path, "r", errors="replace") as fh:
        for line in fh:
            if line.startswith("Cases = ["):
                try:
                    value = ast.literal_eval(line[len("Cases = "):].strip())
                except (ValueError, SyntaxError):
                    return None
                return [str(x) for x in value]
    return None


def classify(entry):
    b = entry.get("behavior")
    c = entry.get("behaviorClose")
    sb = BEHAVIOR_MAP.get(b, "FAILED")
    sc = CLOSE_MAP.get(c, "FAILED")
    return sb if ORDER[sb] >= ORDER[sc] else sc


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Fail on Autobahn fuzzingclient failures (reads OUT_DIR/index.json).")
    ap.add_argument("report", help="report directory (containing index.json) or the index.json itself")
    ap.add_argument("--agent", help="agent name in index.json (default: the only agent, else 'pollserve')")
    ap.add_argument("--wstest-log", help="wstest stdout log; its 'Cases = [...]' line gives the expected case set")
    ap.add_argument("--expected-cases", help="comma-separated explicit case IDs that must all be present")
    ap.add_argument("--expected-count", type=int, help="exact number of (non-excluded) cases the report must contain")
    ap.add_argument("--min-cases", type=int, default=1,
                    help="sanity minimum of (non-excluded) cases in the report (default 1; 0 disables)")
    ap.add_argument("--exclude", default="", help="comma-separated case patterns to ignore, e.g. '12.*,13.*'")
    ap.add_argument("--strict", action="store_true", help="treat NON-STRICT results as failures too")
    ap.add_argument("--quiet", action="store_true", help="only print the summary lines, not every non-OK case")
    args = ap.parse_args(argv)

    index_path = args.report
    if os.path.isdir(index_path):
        index_path = os.path.join(index_path, "index.json")
    problems = []  # run-level problems (missing report, too few cases, ...)

    index = {}
    if not os.path.exists(index_path):
        problems.append("no report at %s (did wstest run at all?)" % index_path)
    else:
        try:
            with open(index_path) as fh:
                index = json.load(fh)
        except (OSError, ValueError) as e:
            print("check_report: cannot read %s: %s" % (index_path, e), file=sys.stderr)
            return 2
        if not isinstance(index, dict):
            print("check_report: %s is not a JSON object" % index_path, file=sys.stderr)
            return 2

    agent = args.agent
    if agent is None:
        agent = next(iter(index)) if len(index) == 1 else "pollserve"
    results = index.get(agent)
    if results is None:
        results = {}
        if index_path and os.path.exists(index_path):
            problems.append("agent %r not in report (agents present: %s) - wstest probably could not connect"
                            % (agent, ", ".join(sorted(index)) or "none"))

    excl = pattern_regex(split_patterns(args.exclude))

    def excluded(cid):
        return bool(excl and excl.match(cid))

    results = {cid: v for cid, v in results.items() if not excluded(cid)}

    expected = set()
    if args.wstest_log:
        if not os.path.exists(args.wstest_log):
            problems.append("wstest log %s not found; cannot determine expected cases" % args.wstest_log)
        else:
            announced = cases_from_wstest_log(args.wstest_log)
            if announced is None:
                problems.append("no 'Cases = [...]' line in %s; cannot determine expected cases" % args.wstest_log)
            else:
                expected.update(c for c in announced if not excluded(c))
    if args.expected_cases:
        expected.update(c for c in split_patterns(args.expected_cases) if not excluded(c))

    missing = sorted(expected - set(results), key=case_key)

    found = len(results)
    if args.expected_count is not None and found != args.expected_count:
        problems.append("expected exactly %d cases, report has %d" % (args.expected_count, found))
    if args.min_cases and found < args.min_cases:
        problems.append("only %d cases in report, sanity minimum is %d" % (found, args.min_cases))
    if expected and len(expected) < args.min_cases:
        problems.append("wstest announced only %d cases, sanity minimum is %d (case/exclude patterns wrong?)"
                        % (len(expected), args.min_cases))

    status = {cid: classify(v) for cid, v in results.items()}
    counts = Counter(status.values())
    failing = [cid for cid, s in status.items()
               if s == "FAILED" or (args.strict and s == "NON-STRICT")]

    print("Autobahn report: %s (agent %s)" % (index_path, agent))
    print("cases: %d found, %d expected%s" % (
        found, len(expected) if expected else (args.expected_count or 0),
        "" if expected or args.expected_count is not None else " (no expected set given)"))
    print("OK: %d  NON-STRICT: %d  INFORMATIONAL: %d  FAILED: %d  MISSING: %d" % (
        counts["OK"], counts["NON-STRICT"], counts["INFORMATIONAL"], counts["FAILED"], len(missing)))

    non_ok = sorted((cid for cid, s in status.items() if s != "OK"), key=case_key)
    if non_ok and not args.quiet:
        print("non-OK cases:")
        for cid in non_ok:
            v = results[cid]
            print("  %-10s %-13s behavior=%s behaviorClose=%s remoteCloseCode=%s" % (
                cid, status[cid], v.get("behavior"), v.get("behaviorClose"), v.get("remoteCloseCode")))
    if missing:
        shown = missing if len(missing) <= 40 else missing[:40] + ["... (%d more)" % (len(missing) - 40)]
        print("missing cases: %s" % ", ".join(shown))

    for p in problems:
        print("ERROR: %s" % p)

    # Plain closing line that CI result readers understand ("N passed, N failed").
    n_failed = len(failing) + len(missing) + (1 if problems and not failing and not missing else 0)
    tail = "autobahn: %d passed, %d failed" % (found - len(failing), n_failed)

    if failing or missing or problems:
        bad = sorted(failing, key=case_key)
        if bad:
            print("FAIL: %d failing case(s): %s" % (len(bad), ", ".join(bad)))
        if missing:
            print("FAIL: %d expected case(s) missing from the report" % len(missing))
        if problems and not bad and not missing:
            print("FAIL: report incomplete")
        print(tail)
        return 1
    print("PASS: %d cases, none failed%s" % (found, " (strict)" if args.strict else ""))
    print(tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
