"""Print the interop matrix (peer x role x suite -> pass/fail/skip) in one command:

    python tests/interop_matrix.py [extra pytest args]

Runs the interop test files through pytest in-process and folds the outcomes of the tests
whose names say which role we play and which suite was used into one table.  The other
scenarios (loss recovery, ALPN, client certificates, key log, ...) are summed per peer.
Exit status is pytest's.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # run as a script from anywhere
FILES = {"openssl": "test_interop_openssl.py", "gnutls": "test_interop_gnutls.py",
         "mbedtls": "test_interop_mbedtls.py"}
SUITE = re.compile(r"TLS_[A-Z0-9_]+")


def _roles(name: str) -> list[str]:
    if "both_roles" in name:
        return ["our client", "our server"]
    if "our_client" in name or "against_openssl_s_server" in name or "against_gnutls_serv" \
            in name or "against_mbedtls_server" in name:
        return ["our client"]
    if "our_server" in name:
        return ["our server"]
    return []


class Collector:
    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        self.other: dict[str, list[str]] = defaultdict(list)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and report.skipped):
            return
        path, _, test = report.nodeid.partition("::")
        peer = next((p for p, f in FILES.items() if path.endswith(f)), "?")
        suite_match = SUITE.search(test)
        roles = _roles(test.split("[")[0])
        if suite_match is None or not roles:
            self.other[peer].append(report.outcome)
            return
        suite = suite_match.group(0) + (" +EtM" if "-etm" in test else "")
        for role in roles:
            self.cells[(peer, role, suite)].append(report.outcome)


def _word(outcomes: list[str]) -> str:
    if any(o == "failed" for o in outcomes):
        return "FAIL"
    if all(o == "skipped" for o in outcomes):
        return "skip"
    return "pass"


def main(argv: list[str]) -> int:
    collector = Collector()
    code = pytest.main(["-q", "-p", "no:cacheprovider", *[str(HERE / f) for f in FILES.values()],
                        *argv], plugins=[collector])
    suites = sorted({suite for _, _, suite in collector.cells})
    columns = [(peer, role) for peer in FILES for role in ("our client", "our server")]
    width = max((len(s) for s in suites), default=10)
    print()
    print(" " * width + "  " + "  ".join(f"{p}/{r.split()[1]:<6}" for p, r in columns))
    for suite in suites:
        row = []
        for peer, role in columns:
            outcomes = collector.cells.get((peer, role, suite))
            row.append(f"{_word(outcomes) if outcomes else '-':<{len(peer) + 7}}")
        print(f"{suite:<{width}}  " + "  ".join(row))
    for peer in FILES:
        others = collector.other.get(peer, [])
        if others:
            print(f"{peer}: other scenarios {others.count('passed')} passed, "
                  f"{others.count('failed')} failed, {others.count('skipped')} skipped")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
