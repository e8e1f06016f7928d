"""The record layer in use: the C backend when it was built, else the pure-Python twin.

Both implement dtls.recordapi identically.  DTLS_RECORD_BACKEND=python forces the twin
(for comparisons); =c makes a missing C build an ImportError instead of a fallback.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

from . import _pyrecord


def _load() -> ModuleType:
    choice = os.environ.get("DTLS_RECORD_BACKEND", "auto")
    if choice not in ("auto", "c", "python"):
        raise ImportError(f"DTLS_RECORD_BACKEND must be auto, c or python, not {choice!r}")
    if choice == "python":
        return _pyrecord
    try:
        from . import _crecord
    except ImportError as exc:
        if choice == "c":
            raise
        warnings.warn(
            f"dtls: the C record layer is not built ({exc}); using the pure-Python record "
            "layer, which is slower. Reinstall with a C compiler and OpenSSL headers.",
            RuntimeWarning,
            stacklevel=3,
        )
        return _pyrecord
    return _crecord


backend: ModuleType = _load()
BACKEND: str = backend.BACKEND
CipherState = backend.CipherState
ReplayWindow = backend.ReplayWindow
split_records = backend.split_records

__all__ = ["BACKEND", "CipherState", "ReplayWindow", "backend", "split_records"]
