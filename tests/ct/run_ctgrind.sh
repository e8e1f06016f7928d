#!/usr/bin/env bash
# Constant-time check of the CBC MAC-then-encrypt record check (dtls_mte_verify) and of the
# constant-time HMAC under it (dtls_hmac_ct), both in csrc/sha.c.
#
# What it does: builds tests/ct/ctgrind_mte.c against csrc/sha.c at each optimisation level in
# OPT_LEVELS (default "-O0 -O2 -O3": at -O2/-O3 the compiler may turn masks back into branches;
# -O0 keeps source-level branches on secrets that GCC happens to if-convert into cmov today but
# another compiler or version may not), then
# runs each binary under valgrind memcheck.  The program marks the secrets (decrypted record,
# HMAC key states, dtls_hmac_ct's body length) as undefined memory, so memcheck reports any
# branch or memory address computed from them.  The one report allowed is the final
# `if (good != 0)` in dtls_mte_verify (the mask -> return value conversion the API permits);
# the compiler may also emit it as a cmov, giving no report.  Anything else fails: a report
# elsewhere, a wrong result, or the marking self-test not being detected.
# Only the portable SHA-1/SHA-256 compression is checked: valgrind cannot execute the SHA
# extensions (SIGILL), so ctgrind_mte.c forces the portable path (see its top comment).
#
# Reading the output: per level one line "ok" or "FAIL".  On FAIL the valgrind log is printed;
# each report names the kind ("Conditional jump or move depends on uninitialised value(s)" = a
# secret-dependent branch, "Use of uninitialised value of size N" = a secret-dependent address,
# i.e. a cache-timing leak) and the stack: the first "at" line is the offending source line in
# sha.c (frames of inlined helpers such as ct_lt are shown as their own lines), "Uninitialised
# value was created by a client request" points at the secret() call in ctgrind_mte.c.
#
# Needs gcc, python3 and valgrind with its headers: on Debian/Ubuntu the `valgrind` package
# ships valgrind/memcheck.h (apt-get install valgrind).  Takes a few seconds.
#
# Timing sanity check (not a proof, x86-64 only; median rdtscp cycles per case, the four cases
# should be within noise of each other):
#   gcc -O2 -Icsrc tests/ct/bench_mte.c csrc/sha.c -o /tmp/bench_mte && /tmp/bench_mte
#
# Usage: tests/ct/run_ctgrind.sh            (from anywhere; exit status 0 = pass)
#        OPT_LEVELS="-O1 -O2 -O3 -Os" tests/ct/run_ctgrind.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OPT_LEVELS=${OPT_LEVELS:-"-O0 -O2 -O3"}

for tool in gcc valgrind python3; do
  command -v "$tool" >/dev/null || { echo "run_ctgrind: $tool not found" >&2; exit 2; }
done
if ! echo '#include <valgrind/memcheck.h>' | gcc -E -x c - >/dev/null 2>&1; then
  echo "run_ctgrind: valgrind/memcheck.h not found: apt-get install valgrind" >&2
  exit 2
fi

# The permitted branch: the `if (good != 0)` line and the two returns after it (debug info may
# attribute the jump to either return).
allowed=$(grep -n 'if (good != 0)' csrc/sha.c | cut -d: -f1)
if [ "$(echo "$allowed" | wc -w)" != 1 ]; then
  echo "run_ctgrind: expected exactly one 'if (good != 0)' in csrc/sha.c; update this script" >&2
  exit 2
fi
selftest_line=$(grep -n 'deliberate secret-dependent branch' tests/ct/ctgrind_mte.c | cut -d: -f1)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check_log LOG ALLOWED_RE: 0 if every valgrind report's top frame matches ALLOWED_RE.
check_log() {
  python3 - "$1" "$2" <<'PY'
import re, sys
log, allowed = sys.argv[1], re.compile(sys.argv[2])
reports, cur = [], None
for line in open(log):
    body = re.sub(r"^==\d+== ?", "", line.rstrip("\n"))
    if not body.strip():
        cur = None
    elif cur is None:          # a line at column 0 starts a report
        cur = [body]
        reports.append(cur)
    else:
        cur.append(body)
def top_frame(report):
    return next((l.strip() for l in report if l.lstrip().startswith("at ")), "")
bad = [r for r in reports if not allowed.search(top_frame(r))]
print(f"{len(reports)} report(s), {len(bad)} not allowed")
sys.exit(1 if bad else 0)
PY
}

vg=(valgrind --tool=memcheck -q --track-origins=yes --error-limit=no)
status=0
for opt in $OPT_LEVELS; do
  bin="$tmp/ctgrind_mte$opt"
  gcc -std=c99 $opt -g -Wall -Wextra -Icsrc tests/ct/ctgrind_mte.c csrc/sha.c -o "$bin"

  # 1. self-test: a deliberate branch on a marked byte must be reported.
  "${vg[@]}" --log-file="$tmp/self$opt.log" "$bin" selftest >/dev/null
  if ! grep -q "ctgrind_mte.c:$selftest_line)" "$tmp/self$opt.log"; then
    echo "$opt: FAIL: valgrind did not report the self-test branch (marking not working)"
    cat "$tmp/self$opt.log"; status=1; continue
  fi

  # 2. the real check.
  if ! "${vg[@]}" --log-file="$tmp/ct$opt.log" "$bin" >"$tmp/out$opt" 2>&1; then
    echo "$opt: FAIL: wrong results"; cat "$tmp/out$opt" "$tmp/ct$opt.log"; status=1; continue
  fi
  summary=$(check_log "$tmp/ct$opt.log" \
            "^at 0x[0-9A-F]+: dtls_mte_verify \(sha\.c:($allowed|$((allowed+1))|$((allowed+2)))\)$") || {
    echo "$opt: FAIL: secret-dependent branch or address ($summary); valgrind log:"
    cat "$tmp/ct$opt.log"; status=1; continue
  }
  echo "$opt: ok ($(cat "$tmp/out$opt"); $summary, allowed: dtls_mte_verify sha.c:$allowed)"
done
exit $status
