"""Handshakes under network faults: completion time and retransmissions per scenario.

The scenarios of tests/test_faults.py (issue 6), each over many seeds, on
`dtls.faults.SimulatedPath`: two sans-IO connections joined by a seeded faulty path on a
virtual clock.  Times are therefore virtual seconds (what the handshake would take on a
path with 10 ms one-way latency plus the faults), exactly reproducible from the seeds
and independent of how loaded the machine is.  Retransmissions count both sides: timer
expiries and resends answering the peer's retransmitted flight.

    python bench/faults.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from dtls.config import DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ConnectionTerminated, HandshakeCompleted
from dtls.faults import Faults, SimulatedPath
from dtls.verify import fingerprint_sha256

LATENCY = 0.01  # one-way, seconds, on every path
DEADLINE = 120.0


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: Faults
    certificate: str  # "p256" (one self-signed cert) or "rsa-chain" (RSA leaf + RSA CA)
    max_datagram_size: int = 1200


SCENARIOS = (
    Scenario("no faults", Faults(delay=LATENCY), "p256"),
    Scenario("20% drop + 20% duplicate + 20% reorder, both ways",
             Faults(drop=0.2, duplicate=0.2, reorder=0.2, reorder_delay=0.3, delay=LATENCY),
             "p256"),
    Scenario("30% drop, both ways", Faults(drop=0.3, delay=LATENCY), "p256"),
    Scenario("MTU cap 576 (1.6 KiB chain, max_datagram_size 576)",
             Faults(mtu=576, delay=LATENCY), "rsa-chain", 576),
    Scenario("MTU cap 256 (1.6 KiB chain, max_datagram_size 256)",
             Faults(mtu=256, delay=LATENCY), "rsa-chain", 256),
    Scenario("black hole > 508 B (max_datagram_size 1400)",
             Faults(mtu=508, delay=LATENCY), "rsa-chain", 1400),
    Scenario("every datagram duplicated", Faults(duplicate=1.0, delay=LATENCY), "p256"),
)


def _certificate(key: Any, name: str, issuer: tuple[x509.Certificate, Any] | None,
                 ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer[0].subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                        critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def identities() -> dict[str, tuple[list[x509.Certificate], Any]]:
    p256 = ec.generate_private_key(ec.SECP256R1())
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate(ca_key, "Bench CA", None, True)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = _certificate(leaf_key, "localhost", (ca, ca_key), False)
    return {"p256": ([_certificate(p256, "localhost", None, False)], p256),
            "rsa-chain": ([leaf, ca], leaf_key)}


def run_one(scenario: Scenario, identity: tuple[list[x509.Certificate], Any],
            seed: int) -> dict[str, Any]:
    chain, key = identity
    common = {"max_datagram_size": scenario.max_datagram_size, "handshake_timeout": DEADLINE}
    client = Connection(DtlsConfiguration(server_name="localhost",
                                          pinned_sha256=(fingerprint_sha256(chain[0]),),
                                          **common), peer_address=("192.0.2.2", 4433))
    server = Connection(DtlsConfiguration(is_client=False, certificate_chain=chain,
                                          private_key=key, **common))
    path = SimulatedPath(client, server, up=scenario.faults, down=scenario.faults, seed=seed)
    client.connect(path.now)

    def done() -> bool:
        return all(any(isinstance(e, (HandshakeCompleted, ConnectionTerminated))
                       for e in ep.events) for ep in (path.client, path.server))

    path.run(done, max_time=DEADLINE + 1)
    ok = all(any(isinstance(e, HandshakeCompleted) for e in ep.events)
             for ep in (path.client, path.server))
    stats = client.stats + server.stats
    return {"ok": ok, "time": path.now,
            "retransmissions": stats["retransmit_timeout"] + stats["retransmit_on_peer_resend"],
            "datagrams": path.sent["up_datagrams"] + path.sent["down_datagrams"],
            "shrunk": stats["datagram_size_reduced"]}


def run(quick: bool) -> dict[str, Any]:
    seeds = range(20 if quick else 200)
    ids = identities()
    chain_bytes = sum(len(c.public_bytes(Encoding.DER)) for c in ids["rsa-chain"][0])
    rows = []
    for scenario in SCENARIOS:
        runs = [run_one(scenario, ids[scenario.certificate], seed) for seed in seeds]
        times = [r["time"] for r in runs if r["ok"]]
        retrans = [r["retransmissions"] for r in runs]
        q = statistics.quantiles(times, n=10) if len(times) >= 2 else [float("nan")] * 9
        rows.append({
            "scenario": scenario.name, "runs": len(runs),
            "completed": sum(r["ok"] for r in runs),
            "time_median": statistics.median(times) if times else None,
            "time_p90": q[8], "time_max": max(times) if times else None,
            "retransmissions_mean": statistics.fmean(retrans),
            "retransmissions_max": max(retrans),
            "datagrams_mean": statistics.fmean(r["datagrams"] for r in runs),
            "runs_that_shrank": sum(r["shrunk"] > 0 for r in runs),
        })
    return {"seeds": len(seeds), "latency": LATENCY, "deadline": DEADLINE,
            "rsa_chain_bytes": chain_bytes, "scenarios": rows}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def to_markdown(result: dict[str, Any]) -> str:
    lines = [
        "### Handshakes under faults (virtual time, bench/faults.py)",
        "",
        (f"{result['seeds']} seeds per scenario; two sans-IO connections on "
        f"`dtls.faults.SimulatedPath`, {result['latency'] * 1000:.0f} ms one-way latency, "
        "faults on both directions, ECDHE-ECDSA P-256 (pinned) or, where named, an RSA-2048 "
        f"leaf + RSA CA chain of {result['rsa_chain_bytes']} bytes; initial retransmission "
        "timer 1 s (RFC 6347 default). Times are virtual seconds from the first ClientHello "
        "until both sides completed; retransmissions count both sides (timer expiries and "
        "answers to the peer's resent flight)."),
        "",
        ("| scenario | completed | median s | p90 s | max s | retransmissions mean (max) "
         "| datagrams mean | runs that shrank datagrams |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["scenarios"]:
        lines.append(
            f"| {r['scenario']} | {r['completed']}/{r['runs']} | {_fmt(r['time_median'])} "
            f"| {_fmt(r['time_p90'])} | {_fmt(r['time_max'])} "
            f"| {r['retransmissions_mean']:.2f} ({r['retransmissions_max']}) "
            f"| {r['datagrams_mean']:.1f} | {r['runs_that_shrank']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20 seeds instead of 200")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    result = run(args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(to_markdown(result))
    return 0



if __name__ == "__main__":
    sys.exit(main())
