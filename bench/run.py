#!/usr/bin/env python3
"""Run the dtls benchmark families and report them.

    python bench/run.py [--quick] [--only throughput,handshakes] [--json FILE]
                        [--plot FILE.png] [--write-results]
    python -m dtls bench ...            (the same, from a source checkout)

Families are modules next to this file with `run(quick: bool) -> dict` (JSON-able) and
`to_markdown(result: dict) -> str`: throughput, handshakes, paper, scale, faults.  Each is imported
only when it runs; a missing or broken module is skipped with the reason printed.

--write-results rewrites each family's section of bench/RESULTS.md (between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, appended if absent), headed by the exact
command line, the date and the machine (CPUs, CPU model, kernel, Python, OpenSSL builds);
the rest of the file (e.g. bench/record_bench.py's section) is left as it is.
--plot draws the throughput ratios to plain Python UDP as a bar chart (needs matplotlib).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_common as bc

FAMILIES = ("throughput", "handshakes", "paper", "scale", "faults")


def _command_line(argv: Sequence[str]) -> str:
    """The command as the user typed it (python -m dtls bench passes it down)."""
    given = os.environ.get("DTLS_BENCH_COMMAND")
    if given:
        return given
    script = os.path.relpath(Path(__file__).resolve(), Path.cwd())
    return shlex.join(["python", script, *argv])


def load_family(name: str) -> tuple[ModuleType | None, str]:
    """(module, "") or (None, why it cannot run)."""
    path = bc.BENCH_DIR / f"{name}.py"
    if not path.exists():
        return None, f"bench/{name}.py is not there (yet)"
    try:
        mod = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001  (another family's bug must not stop this one)
        return None, f"bench/{name}.py does not import: {type(exc).__name__}: {exc}"
    missing = [f for f in ("run", "to_markdown") if not callable(getattr(mod, f, None))]
    if missing:
        return None, f"bench/{name}.py lacks {', '.join(missing)}()"
    return mod, ""


def plot_throughput(result: dict[str, Any], path: str) -> str:
    """Save a grouped bar chart of ratios to py-udp; returns a message for the user."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot: matplotlib is not installed (pip install matplotlib); skipped"
    rows = [r for r in result.get("rows", []) if r.get("ratio_vs_py_udp") is not None]
    if not rows:
        return "--plot: no throughput ratios to plot; skipped"
    groups = list(dict.fromkeys(f"{r['mode']} {r['size']} B" for r in rows))
    contenders = list(dict.fromkeys(r["contender"] for r in rows))
    value = {(f"{r['mode']} {r['size']} B", r["contender"]): r["ratio_vs_py_udp"]
             for r in rows}
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / max(len(contenders), 1)
    for i, c in enumerate(contenders):
        xs = [g + (i - (len(contenders) - 1) / 2) * width for g in range(len(groups))]
        ys = [value.get((grp, c), 0.0) for grp in groups]
        ax.bar(xs, ys, width, label=c)
    ax.axhline(1.0, color="black", linewidth=0.8)
    for goal, label in ((3.0, "dtls-batch target 3x"), (0.75, "dtls-single target 0.75x")):
        ax.axhline(goal, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(label, (len(groups) - 0.5, goal), ha="right", va="bottom",
                    fontsize="x-small", color="grey")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_yscale("log")
    ax.set_ylabel("delivered datagrams/s relative to plain Python UDP (log scale)")
    ax.set_title("dtls throughput over loopback (median of per-round ratios)"
                 + (" [--quick]" if result.get("quick") else ""))
    ax.legend(fontsize="small", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"--plot: wrote {path}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer and shorter rounds (a smoke run; figures are rough)")
    ap.add_argument("--only", metavar="FAMILIES",
                    help="comma-separated subset of: " + ", ".join(FAMILIES))
    ap.add_argument("--json", metavar="FILE", help="write all results as JSON")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="bar chart of the throughput ratios (needs matplotlib)")
    ap.add_argument("--write-results", action="store_true",
                    help="rewrite the families' sections of bench/RESULTS.md")
    ap.add_argument("--results-file", metavar="FILE", default=str(bc.RESULTS_MD),
                    help="the markdown file --write-results updates (default: %(default)s)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    families = list(FAMILIES)
    if args.only:
        families = [f.strip() for f in args.only.split(",") if f.strip()]
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            print(f"run.py: unknown families {', '.join(unknown)}; "
                  f"known: {', '.join(FAMILIES)}", file=sys.stderr)
            return 2
    command = _command_line(argv)
    info = bc.machine_info()
    print(f"# dtls benchmarks ({'quick' if args.quick else 'full'}): {', '.join(families)}",
          flush=True)
    results: dict[str, Any] = {}
    markdown: dict[str, str] = {}
    skipped: dict[str, str] = {}
    failed = False
    for name in families:
        mod, why = load_family(name)
        if mod is None:
            print(f"\n[{name}] skipped: {why}", flush=True)
            skipped[name] = why
            continue
        print(f"\n[{name}] running...", flush=True)
        t0 = time.monotonic()
        try:
            result = mod.run(args.quick)
            md = mod.to_markdown(result)
        except Exception as exc:  # noqa: BLE001  (report, go on with the next family)
            traceback.print_exc()
            print(f"[{name}] FAILED: {type(exc).__name__}: {exc}", flush=True)
            skipped[name] = f"failed: {type(exc).__name__}: {exc}"
            failed = True
            continue
        results[name] = result
        markdown[name] = md
        print(f"[{name}] done in {time.monotonic() - t0:.0f} s\n\n{md}", flush=True)
    if args.json:
        bc.write_json(args.json, {"command": command, "machine": info, "quick": args.quick,
                                  "families": results, "skipped": skipped})
        print(f"\nwrote {args.json}")
    if args.plot:
        if "throughput" in results:
            print(plot_throughput(results["throughput"], args.plot))
        else:
            print("--plot: the throughput family did not run; skipped")
    if args.write_results:
        header = bc.machine_markdown(info, command)
        for name, md in markdown.items():
            title, sep, rest = md.partition("\n")
            body = (f"{title}\n\n{header}\n{rest}" if sep and title.startswith("#")
                    else f"{header}\n\n{md}")
            bc.write_results_section(name, body, Path(args.results_file))
        if markdown:
            print(f"updated {', '.join(markdown)} in {args.results_file}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the families' finally blocks have stopped their workers
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
