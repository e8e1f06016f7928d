"""Shared helpers for the benchmark families driven by bench/run.py.

* Statistics: `summary` (median, min, max) and `median_ratio` (median of per-round ratios).
* CPU time: `cpu_seconds()` is this process's user+system time (resource.getrusage), which
  a worker reads around its timed loop, so each side's CPU per record excludes setup.
* Worker processes: `Worker` runs functions in a child started with multiprocessing's
  'spawn' context and talks to it over a Pipe: `start_call`, intermediate messages
  (`next_message`), a cooperative stop request, the final result.  Every wait has a
  timeout, and `close()` (also on error, via the context manager) terminates then kills
  the child, so a benchmark can never hang or leave processes behind.
* Reporting: `machine_info`, `fmt_rate`/`fmt_ratio`, `markdown_table`, `write_json`, and
  `write_results_section` (rewrites one marked family section of bench/RESULTS.md and
  keeps everything else in the file).
"""

from __future__ import annotations

import ctypes
import datetime
import importlib
import json
import multiprocessing as mp
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _p in (str(ROOT), str(BENCH_DIR)):  # run from a checkout: `python bench/run.py`
    if _p not in sys.path:
        sys.path.insert(0, _p)

RESULTS_MD = BENCH_DIR / "RESULTS.md"


# -- statistics ------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU seconds used by this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def summary(values: Iterable[float | None]) -> dict[str, float | None]:
    """{'median', 'min', 'max', 'n'} of the non-None values (None entries when empty)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def median_ratio(pairs: Iterable[tuple[float | None, float | None]]) -> float | None:
    """Median over rounds of a_r / b_r (rounds where either side is missing are skipped)."""
    rs = [r for a, b in pairs if (r := ratio(a, b)) is not None]
    return statistics.median(rs) if rs else None


# -- formatting ------------------------------------------------------------------------


def fmt_rate(x: float | None) -> str:
    """1234567 -> '1.23M', 45678 -> '45.7k'; '-' for None."""
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def fmt_num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   right: Sequence[bool] | None = None) -> str:
    """A GitHub markdown table with padded columns (right-aligned where `right` says)."""
    right = list(right) if right is not None else [False] * len(header)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) if r else str(c).ljust(w)
                                 for c, w, r in zip(cells, widths, right)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                         for w, r in zip(widths, right)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


# -- machine description -----------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _run_quiet(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _dtls_libcrypto() -> str:
    """', C layer on OpenSSL X (path)' for the libcrypto the C record layer loaded."""
    try:
        from dtls import _crecord  # noqa: F401  (loads the extension and its libcrypto)
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "libcrypto" in line})
        for path in paths:
            fn = ctypes.CDLL(path).OpenSSL_version
            fn.restype, fn.argtypes = ctypes.c_char_p, [ctypes.c_int]
            if "cryptography" not in path:
                return f", C layer on {fn(0).decode()} ({path})"
    except (ImportError, OSError, AttributeError):
        pass
    return ""


def _openssl_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    if shutil.which("openssl"):
        out["openssl CLI"] = _run_quiet(["openssl", "version"]) or "?"
    try:
        import cryptography
        from cryptography.hazmat.backends.openssl import backend
        out["cryptography"] = f"{cryptography.__version__} ({backend.openssl_version_text()})"
    except Exception as exc:  # noqa: BLE001
        out["cryptography"] = f"unavailable ({exc})"
    try:
        import OpenSSL
        from OpenSSL import SSL
        out["pyOpenSSL"] = (f"{OpenSSL.__version__} "
                            f"({SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()})")
    except Exception as exc:  # noqa: BLE001
        out["pyOpenSSL"] = f"unavailable ({type(exc).__name__})"
    try:
        import mbedtls
        from mbedtls import version as mversion
        out["python-mbedtls"] = f"{mbedtls.__version__} ({mversion.version})"
    except Exception as exc:  # noqa: BLE001
        out["python-mbedtls"] = f"unavailable ({type(exc).__name__})"
    try:
        import dtls
        out["dtls"] = (f"{dtls.__version__}, record backend {dtls.record_backend}"
                       f"{_dtls_libcrypto()}")
    except Exception as exc:  # noqa: BLE001
        out["dtls"] = f"unavailable ({exc})"
    return out


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (for RESULTS.md and the JSON)."""
    uname = platform.uname()
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": f"{uname.system} {uname.release} {uname.machine}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "loadavg_at_start": load,
        "versions": _openssl_versions(),
    }


def machine_markdown(info: dict[str, Any], command: str) -> str:
    """A few markdown lines: command, date, machine, versions."""
    lines = [f"Command: `{command}`", f"Date: {info['date']}", "",
             (f"- Machine: {info['kernel']}, {info['nproc']} CPUs "
              f"({info['usable_cpus']} usable), {info['cpu_model']}; "
              f"load average at start {info['loadavg_at_start']}"),
             f"- Python: {info['python']}"]
    for name, ver in info.get("versions", {}).items():
        lines.append(f"- {name}: {ver}")
    return "\n".join(lines)


# -- JSON and RESULTS.md -----------------------------------------------------------------


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def section_markers(family: str) -> tuple[str, str]:
    return f"<!-- bench:{family} -->", f"<!-- /bench:{family} -->"


def write_results_section(family: str, body: str, path: Path = RESULTS_MD) -> None:
    """Replace the text between this family's markers in `path` (append the section,
    markers included, if it is not there yet); everything else is kept byte for byte."""
    begin, end = section_markers(family)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# -- worker processes --------------------------------------------------------------------


class WorkerError(RuntimeError):
    """The worker raised (the message carries its traceback), died, or timed out."""


class Channel:
    """The worker side of a call: send intermediate messages, notice a stop request."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stop = False

    def report(self, obj: Any) -> None:
        """Send an intermediate message to the parent (`Worker.next_message`)."""
        self._conn.send(("msg", obj))

    def stop_requested(self, timeout: float = 0.0) -> bool:
        """True once the parent asked this call to stop (waits up to `timeout` for it)."""
        if not self._stop and self._conn.poll(timeout):
            msg = self._conn.recv()
            if msg[0] == "stop":
                self._stop = True
            elif msg[0] == "exit":
                raise SystemExit(0)
        return self._stop

    def wait_stop(self, timeout: float) -> bool:
        """Block until a stop request (True) or `timeout` seconds (False)."""
        deadline = time.monotonic() + timeout
        while not self._stop:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.stop_requested(left)
        return True

    def fileno(self) -> int:
        """The control pipe's fd, to select() on alongside a socket."""
        return self._conn.fileno()


def _worker_main(conn: Connection, cpu: int | None) -> None:
    """Child process loop: run ('call', module, function, kwargs) requests until 'exit'."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "exit":
            return
        if msg[0] != "call":
            continue  # a late 'stop' for a call that already returned
        _, module, func, kwargs = msg
        try:
            fn = getattr(importlib.import_module(module), func)
            result = fn(Channel(conn), **kwargs)
        except SystemExit:
            return
        except BaseException:  # noqa: BLE001  (reported to the parent, which raises it)
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("done", result))


class Worker:
    """A long-lived child process (multiprocessing 'spawn') that runs bench functions.

    `fn(channel, **kwargs)` must be a module-level function importable in the child;
    it may `channel.report(...)` intermediate messages and poll `channel.stop_requested()`.
    """

    def __init__(self, name: str, cpu: int | None = None) -> None:
        ctx = mp.get_context("spawn")
        self.name = name
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker_main, args=(child, cpu), name=name,
                                 daemon=True)
        self._proc.start()
        child.close()
        self._busy = False

    def start_call(self, module: str, func: str, **kwargs: Any) -> None:
        if self._busy:
            raise WorkerError(f"{self.name}: a call is already running")
        self._conn.send(("call", module, func, kwargs))
        self._busy = True

    def _recv(self, timeout: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerError(f"{self.name}: no answer within {timeout:g} s")
            if self._conn.poll(min(left, 0.5)):
                try:
                    return self._conn.recv()  # type: ignore[no-any-return]
                except EOFError:
                    raise WorkerError(f"{self.name}: worker died "
                                      f"(exit code {self._proc.exitcode})") from None
            if not self._proc.is_alive():
                raise WorkerError(f"{self.name}: worker died (exit code {self._proc.exitcode})")

    def next_message(self, timeout: float) -> Any:
        """The next intermediate message of the running call."""
        kind, obj = self._recv(timeout)
        if kind == "msg":
            return obj
        self._busy = False
        if kind == "error":
            raise WorkerError(f"{self.name}: {obj}")
        raise WorkerError(f"{self.name}: call ended ({kind}) before sending a message")

    def request_stop(self) -> None:
        if self._busy:
            self._conn.send(("stop",))

    def result(self, timeout: float) -> Any:
        """Wait for the running call's return value (intermediate messages are dropped)."""
        while True:
            kind, obj = self._recv(timeout)
            if kind == "msg":
                continue
            self._busy = False
            if kind == "error":
                raise WorkerError(f"{self.name}: {obj}")
            return obj

    def close(self) -> None:
        """Ask the child to exit; terminate, then kill it if it does not."""
        try:
            self._conn.send(("exit",))
        except (OSError, ValueError):
            pass
        self._proc.join(1.0)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(1.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(1.0)
        self._conn.close()

    def restart_needed(self) -> bool:
        """True when the child is gone or stuck in a call (the caller should replace it)."""
        return self._busy or not self._proc.is_alive()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
