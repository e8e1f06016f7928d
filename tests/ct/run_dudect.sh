#!/usr/bin/env bash
# Statistical timing test (dudect) of the CBC MAC-then-encrypt check, dtls_mte_verify.
# Not run in CI (timing on shared machines is noise); run it on a quiet machine:
#   bash tests/ct/run_dudect.sh [measurements per MAC algorithm, default 2000000]
# Runs the compression the CPU gets (SHA-NI where present) and the portable one.
# Exit status 1 if any |t| >= 4.5 (leakage), 2 on a setup error.  See dudect_mte.c.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2000000}
bin=$(mktemp -d)/dudect_mte
trap 'rm -rf "$(dirname "$bin")"' EXIT
gcc -std=c99 -O2 -Wall -Wextra -Icsrc tests/ct/dudect_mte.c csrc/sha.c -lm -o "$bin"
status=0
"$bin" "$n" auto || status=$?
"$bin" "$n" portable || { s=$?; [ "$s" -gt "$status" ] && status=$s; }
exit "$status"
