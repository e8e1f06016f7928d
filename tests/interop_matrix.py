"""Print the interop matrix (peer x role x case -> pass/fail/skip/n/a) in one command:

    python tests/interop_matrix.py [extra pytest args]

Runs the interop test files through pytest in-process and folds the outcomes into tables:

* REQUIRED (issue #3, "Interoperability"): the ``test_required_cell[<role>-<case>]`` tests
  of each peer's module (cases: tests/interop_fixtures.py REQUIRED_CASES), both roles, for
  openssl, gnutls and mbed TLS; client-certificate authentication is required against
  OpenSSL only (run, and shown in parentheses, against the others too).
* Additional coverage: the other suite-by-suite tests (names saying the role and the suite),
  plus cells a peer cannot do, marked n/a with the reason -- each reason is demonstrated by
  a peer-against-peer test, and the cell only says n/a when that test passed.
* Other scenarios (loss recovery, ALPN, key log, ...) summed per peer.

Session resumption and DTLS 1.0 are in tests/test_interop_resumption.py (not folded here).

Exit status: 1 when any REQUIRED cell did not pass (a failure, a skip -- e.g. a missing
tool -- or a cell that did not run all count: the issue needs proof), else pytest's.
"""

from __future__ import annotations

import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # run as a script from anywhere

FILES = {"openssl": "test_interop_openssl.py", "gnutls": "test_interop_gnutls.py",
         "mbedtls": "test_interop_mbedtls.py"}
PEER_TOOLS = {"openssl": ("openssl s_server", "openssl s_client"),
              "gnutls": ("gnutls-serv --udp", "gnutls-cli --udp"),
              "mbedtls": ("mbedtls server", "mbedtls client")}
WIRE_FILE = "test_wire_tshark.py"  # our handshake decoded by Wireshark's dissector
SUITE = re.compile(r"TLS_[A-Z0-9_]+")
REQUIRED_TEST = "test_required_cell"
CASE_LABELS = {
    "ECDHE_ECDSA_AES128_GCM": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE_RSA_CHACHA20": "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE_ECDSA_AES128_CBC_SHA+EtM": "ECDHE-ECDSA-AES128-SHA (CBC) with EtM",
    "ECDHE_ECDSA_AES128_CBC_SHA-noEtM": "ECDHE-ECDSA-AES128-SHA (CBC) without EtM",
    "PSK_AES128_GCM": "PSK-AES128-GCM-SHA256",
    "client-cert": "client certificate (ECDHE-ECDSA-AES128-GCM)",
}

NOT_APPLICABLE: dict[tuple[str, str, str], tuple[str, str]] = {
    # (peer, role, suite label) -> (why, the peer-vs-peer test demonstrating it)
    ("gnutls", "our server", "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"): (
        ("n/a: gnutls-cli 3.7.9 crashes (SIGSEGV) on ECDHE-PSK over DTLS (also against "
         "gnutls-serv)"),
        ("test_interop_gnutls.py::test_gnutls_cli_segfaults_on_ecdhe_psk_with_gnutls_serv_too"
         "[TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256]")),
}


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
        self.required: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        self.cells: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        self.other: dict[str, list[str]] = defaultdict(list)
        self.by_test: dict[str, str] = {}   # "file.py::test_name[...]" -> outcome
        self.failed_required: list[str] = []
        self.wire: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and report.skipped) \
                and not (report.when == "setup" and report.failed):
            return
        path, _, test = report.nodeid.partition("::")
        self.by_test[f"{Path(path).name}::{test}"] = report.outcome
        if path.endswith(WIRE_FILE):
            self.wire.append((test, report.outcome))
            return
        peer = next((p for p, f in FILES.items() if path.endswith(f)), "?")
        name, _, params = test.partition("[")
        params = params.rstrip("]")
        if name == REQUIRED_TEST:
            # ids are "our-client-<case>" / "our-server-<case>"
            m = re.fullmatch(r"our-(client|server)-(.+)", params)
            role, case = ("our " + m.group(1), m.group(2)) if m else ("?", params)
            self.required[(peer, role, case)].append(report.outcome)
            if report.outcome != "passed":
                self.failed_required.append(report.nodeid)
            return
        suite_match = SUITE.search(test)
        roles = _roles(name)
        if suite_match is None or not roles:
            self.other[peer].append(report.outcome)
            return
        suite = suite_match.group(0)
        if "_CBC_" in suite:
            suite += " +EtM" if "-etm" in test else " no EtM"
        for role in roles:
            self.cells[(peer, role, suite)].append(report.outcome)


def _word(outcomes: list[str] | None) -> str:
    if not outcomes:
        return "-"
    if any(o == "failed" for o in outcomes):
        return "FAIL"
    if all(o == "skipped" for o in outcomes):
        return "skip"
    return "pass"


COLUMNS = [(peer, role) for peer in FILES for role in ("our client", "our server")]


def _tool(peer: str, role: str) -> str:
    """The peer program our side talks to in this column (its server for our client)."""
    return PEER_TOOLS[peer][0 if role == "our client" else 1].split()[-1]


def _header(width: int, cell: int) -> str:
    top = " " * width + "  " + "  ".join(f"{peer:<{cell}}" for peer, _ in COLUMNS)
    sub = " " * width + "  " + "  ".join(
        f"{role + ' vs ' + _tool(peer, role):<{cell}}"
        for peer, role in COLUMNS)
    return top + "\n" + sub


def print_required(c: Collector) -> tuple[int, int, list[str]]:
    """The REQUIRED table; returns (required cells passing, required cells, problems)."""
    # Imported only now, after pytest has loaded it with assertion rewriting.
    from interop_fixtures import REQUIRED_CASES, REQUIRED_PEERS, cell_etm_sides

    cell = 22
    width = max(len(v) for v in CASE_LABELS.values())
    print("\nREQUIRED by issue #3 (our stack against each peer, DTLS 1.2, data both ways)")
    print("  R = required cell; (x) = run but not required; * = EtM turned off on OUR side")
    print(_header(width, cell))
    good = total = 0
    problems: list[str] = []
    for case in REQUIRED_CASES:
        row = []
        for peer, role in COLUMNS:
            word = _word(c.required.get((peer, role, case)))
            required = peer in REQUIRED_PEERS[case]
            star = "*" if not cell_etm_sides(peer, case)[1] else ""
            if required:
                total += 1
                if word == "pass":
                    good += 1
                else:
                    problems.append(f"{peer} / {role} / {CASE_LABELS[case]}: "
                                    + {"-": "did not run", "skip": "skipped"}.get(word, word))
                text = f"R {word}{star}"
            else:
                text = f"  ({word}{star})"
            row.append(f"{text:<{cell}}")
        print(f"{CASE_LABELS[case]:<{width}}  " + "  ".join(row))
    print("  * mbed TLS: python-mbedtls cannot turn encrypt-then-mac off (no binding for "
          "mbedtls_ssl_conf_encrypt_then_mac;\n    mbed TLS always offers/accepts it), so "
          "'without EtM' is tested by turning it off on OUR side\n    "
          "(DtlsConfiguration(encrypt_then_mac=False)); with openssl/gnutls the PEER refuses "
          "EtM (-no_etm / %NO_ETM)\n    and our side keeps its default (on), so the fallback "
          "is what is tested.")
    print("  'our client vs s_server' = our client against the peer's server; 'our server vs "
          "s_client' likewise.\n  Data both ways: a line each way and checked on both sides "
          "(gnutls-serv can only echo, so\n    its server->client data is the echo of ours).")
    return good, total, problems


def print_additional(c: Collector) -> list[str]:
    labels = sorted({s for _, _, s in c.cells} | {s for _, _, s in NOT_APPLICABLE})
    cell = 22
    width = max((len(s) for s in labels), default=10)
    notes: list[str] = []
    print("\nAdditional coverage (suite-by-suite tests; '-' = not tested with that peer)")
    print(_header(width, cell))
    for suite in labels:
        row = []
        for peer, role in COLUMNS:
            outcomes = c.cells.get((peer, role, suite))
            text = _word(outcomes)
            na = NOT_APPLICABLE.get((peer, role, suite))
            if na is not None and not outcomes:
                why, test = na
                proven = c.by_test.get(test) == "passed"
                notes.append(f"[{len(notes) + 1}] {peer} / {role} / {suite}: {why} -- "
                             + (f"demonstrated by {test} (passed)" if proven else
                                f"UNPROVEN: {test} did not pass ({c.by_test.get(test)})"))
                text = f"n/a [{len(notes)}]" if proven else f"n/a? [{len(notes)}]"
            row.append(f"{text:<{cell}}")
        print(f"{suite:<{width}}  " + "  ".join(row))
    for note in notes:
        print("  " + note)
    return notes


def main(argv: list[str]) -> int:
    collector = Collector()
    started = time.monotonic()
    code = pytest.main(["-q", "-p", "no:cacheprovider", *[str(HERE / f) for f in FILES.values()],
                        str(HERE / WIRE_FILE), *argv], plugins=[collector])
    elapsed = time.monotonic() - started
    good, total, problems = print_required(collector)
    print_additional(collector)
    for peer in FILES:
        others = collector.other.get(peer, [])
        if others:
            print(f"{peer}: other scenarios {others.count('passed')} passed, "
                  f"{others.count('failed')} failed, {others.count('skipped')} skipped")
    if collector.wire:
        print("wire format (our client + our server, decoded and decrypted by tshark): "
              + ", ".join(f"{t.partition('[')[2].rstrip(']') or t} {o}"
                          for t, o in collector.wire))
    print(f"\ninterop suite ran in {elapsed:.1f} s")
    if problems or total == 0:
        print(f"REQUIRED CELLS: {good} of {total} pass -- NOT all required cells pass:")
        for p in problems:
            print(f"  {p}")
        return 1
    print(f"REQUIRED CELLS: {good} of {total} pass -- all required cells pass")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
