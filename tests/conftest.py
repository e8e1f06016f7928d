"""Shared fixtures: every record-layer test runs against both backends.

The C backend is skipped (with the reason) when it was not built, except under
DTLS_REQUIRE_C=1 (CI), where a missing C build is a failure, not a skip.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from dtls import _pyrecord

try:
    from dtls import _crecord as _c
    _C_ERROR = ""
except ImportError as exc:  # not built: pure-Python install
    _c = None  # type: ignore[assignment]
    _C_ERROR = str(exc)
    if os.environ.get("DTLS_REQUIRE_C") == "1":
        raise

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WYCHEPROOF = SHARED / "vectors" / "wycheproof"

BACKENDS = [
    pytest.param(_pyrecord, id="python"),
    pytest.param(_c, id="c", marks=pytest.mark.skipif(
        _c is None, reason=f"C record layer not built: {_C_ERROR}")),
]


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> ModuleType:
    """A record-layer backend module (dtls._pyrecord or dtls._crecord)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def c_mod() -> ModuleType:
    """The C backend, for tests that compare it with the twin; skips when not built."""
    if _c is None:
        pytest.skip(f"C record layer not built: {_C_ERROR}")
    return _c
