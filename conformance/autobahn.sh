#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzing client against a WebSocket echo endpoint
# and fail unless every selected case passes (see check_report.py).
#
#   conformance/autobahn.sh URL [CASES] [OUT_DIR]
#
#   URL      e.g. ws://127.0.0.1:9001/ws/echo  (the server must already be running)
#   CASES    comma-separated Autobahn case patterns, default '*'  (e.g. '1.*,2.*,5.*')
#   OUT_DIR  report directory, default conformance/reports/servers
#            (index.json, index.html, per-case files, spec.json, wstest.log)
#
# Env:
#   AUTOBAHN_EXCLUDE        comma-separated patterns to exclude; default '12.*,13.*'
#                           (permessage-deflate); set to '' to exclude nothing
#   AUTOBAHN_AGENT          agent name in the report (default pollserve)
#   AUTOBAHN_EXPECTED_COUNT exact number of cases the report must contain (optional)
#   AUTOBAHN_MIN_CASES      sanity minimum; default 301 for CASES='*' with the
#                           default excludes (all of sections 1-10), else 1
#   AUTOBAHN_STRICT         non-empty: NON-STRICT results fail too
#   AUTOBAHN_TIMEOUT        seconds before wstest is killed (default 1800)
#   AUTOBAHN_WAIT           seconds to wait for the port to accept (default 15)
#   WSTEST_ENV              wstest virtualenv (default conformance/.wstest-env;
#                           installed on demand by install-wstest.sh)
#   PYTHON                  Python 3 for check_report.py (default python3)
#
# Exit codes: 0 pass; 1 failures / wstest error; 2 usage;
#             3 wstest unavailable (no Python 2.7, $CI empty) -> caller may SKIP
set -euo pipefail

log() { printf '[autobahn] %s\n' "$*" >&2; }
die() { printf '[autobahn] ERROR: %s\n' "$*" >&2; exit "${2:-1}"; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ $# -lt 1 ] || [ $# -gt 3 ]; then die "usage: $0 URL [CASES] [OUT_DIR]" 2; fi
URL=$1
CASES=${2:-*}
OUT_DIR=${3:-"$SCRIPT_DIR/reports/servers"}
DEFAULT_EXCLUDE='12.*,13.*'
EXCLUDE=${AUTOBAHN_EXCLUDE-$DEFAULT_EXCLUDE}
AGENT=${AUTOBAHN_AGENT:-pollserve}
TIMEOUT=${AUTOBAHN_TIMEOUT:-1800}
WAIT=${AUTOBAHN_WAIT:-15}
WSTEST_ENV=${WSTEST_ENV:-"$SCRIPT_DIR/.wstest-env"}
PYTHON=${PYTHON:-python3}
# 301 = every case of sections 1-10 in autobahntestsuite 25.10.1 (517 minus 216 in 12/13).
FULL_RUN_CASES=301
if [ -n "${AUTOBAHN_MIN_CASES:-}" ]; then MIN_CASES=$AUTOBAHN_MIN_CASES
elif [ "$CASES" = "*" ] && [ "$EXCLUDE" = "$DEFAULT_EXCLUDE" ]; then MIN_CASES=$FULL_RUN_CASES
else MIN_CASES=1
fi

case "$URL" in ws://*|wss://*) ;; *) die "URL must start with ws:// or wss:// (got '$URL')" 2 ;; esac

# --- wstest -----------------------------------------------------------------
rc=0
WSTEST=$("$SCRIPT_DIR/install-wstest.sh" "$WSTEST_ENV") || rc=$?
if [ "$rc" -eq 3 ]; then log "SKIP: wstest unavailable (see above)"; exit 3; fi
[ "$rc" -eq 0 ] || die "install-wstest.sh failed (exit $rc)"

# --- output dir: remove stale results so an old index.json can never pass ---
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
rm -f "$OUT_DIR"/index.json "$OUT_DIR"/index.html "$OUT_DIR"/spec.json "$OUT_DIR"/wstest.log \
      "$OUT_DIR"/*_case_*.json "$OUT_DIR"/*_case_*.html

# --- spec ---------------------------------------------------------------------
SPEC="$OUT_DIR/spec.json"
"$PYTHON" - "$SPEC" "$OUT_DIR" "$AGENT" "$URL" "$CASES" "$EXCLUDE" <<'EOF'
import json, sys
spec_path, outdir, agent, url, cases, exclude = sys.argv[1:7]
split = lambda s: [x.strip() for x in s.split(",") if x.strip()]
spec = {
    "outdir": outdir,
    "servers": [{"agent": agent, "url": url}],
    "cases": split(cases) or ["*"],
    "exclude-cases": split(exclude),
    "exclude-agent-cases": {},
}
with open(spec_path, "w") as fh:
    json.dump(spec, fh, indent=2)
    fh.write("\n")
EOF
log "spec $SPEC: cases=[$CASES] exclude=[$EXCLUDE] agent=$AGENT url=$URL"

# --- wait for the server's port (wstest itself would just report 0 cases) ----
hostport=${URL#*://}; hostport=${hostport%%/*}
case "$hostport" in
  \[*\]:*) host=${hostport%%]:*}; host=${host#[}; port=${hostport##*]:} ;;
  \[*\])   host=${hostport#[}; host=${host%]}; port= ;;
  *:*)     host=${hostport%:*}; port=${hostport##*:} ;;
  *)       host=$hostport; port= ;;
esac
[ -n "$port" ] || { case "$URL" in wss://*) port=443 ;; *) port=80 ;; esac; }
up=0
for _ in $(seq 1 $(( WAIT * 4 ))); do
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then up=1; break; fi
  sleep 0.25
done
[ "$up" -eq 1 ] || log "WARNING: nothing accepts connections on $host:$port after ${WAIT}s; running anyway (the check will fail)"

# --- run ------------------------------------------------------------------------
log "running $WSTEST -m fuzzingclient (timeout ${TIMEOUT}s; log: $OUT_DIR/wstest.log)"
start=$(date +%s)
wrc=0
(cd "$OUT_DIR" && timeout --kill-after=10 "$TIMEOUT" "$WSTEST" -m fuzzingclient -s "$SPEC") \
  > "$OUT_DIR/wstest.log" 2>&1 || wrc=$?
elapsed=$(( $(date +%s) - start ))
ncases=$(grep -c '^Running test case ID' "$OUT_DIR/wstest.log" || true)
log "wstest finished in ${elapsed}s with exit code $wrc; $ncases case(s) run"
grep -E '^(Ok, will run|Connection to .* failed)' "$OUT_DIR/wstest.log" | sed 's/^/[autobahn]   wstest: /' >&2 || true
if [ "$wrc" -ne 0 ]; then
  log "wstest failed (exit $wrc$([ "$wrc" -eq 124 ] && echo ', timed out')); last lines of its log:"
  tail -n 20 "$OUT_DIR/wstest.log" | sed 's/^/[autobahn]   | /' >&2
fi

# --- check -----------------------------------------------------------------------
check_args=("$OUT_DIR" --agent "$AGENT" --wstest-log "$OUT_DIR/wstest.log"
            --exclude "$EXCLUDE" --min-cases "$MIN_CASES")
[ -z "${AUTOBAHN_EXPECTED_COUNT:-}" ] || check_args+=(--expected-count "$AUTOBAHN_EXPECTED_COUNT")
[ -z "${AUTOBAHN_STRICT:-}" ] || check_args+=(--strict)
crc=0
"$PYTHON" "$SCRIPT_DIR/check_report.py" "${check_args[@]}" || crc=$?
log "HTML report: $OUT_DIR/index.html"
if [ "$crc" -ne 0 ]; then exit 1; fi
if [ "$wrc" -ne 0 ]; then exit 1; fi
exit 0
