"""The cffi declarations restate some of csrc/record.h: keep the two in step."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from dtls.protection import HEADER_LEN, BulkCipher, MacAlgorithm
from dtls.recordbase import MAX_PLAINTEXT, MAX_WINDOW, OpenStatus

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "record.h"


def header_defines() -> dict[str, int]:
    """Integer #defines of record.h, evaluated (they are small constant expressions)."""
    values: dict[str, int] = {}
    for name, expr in re.findall(r"^#define (DTLS_\w+) (.+?)(?:\s*/\*.*)?$", HEADER.read_text(),
                                 re.MULTILINE):
        expr = re.sub(r"UINT64_C\((\d+)\)", r"\1", expr)
        try:
            values[name] = int(eval(expr, {"__builtins__": {}}, dict(values)))  # noqa: S307
        except (NameError, SyntaxError):
            continue
    return values


def test_cdef_constants_match_header(c_mod: ModuleType) -> None:
    from dtls._record import lib

    defines = header_defines()
    for name in ("DTLS_HEADER_LEN", "DTLS_MAX_PLAINTEXT", "DTLS_MAX_WINDOW", "DTLS_MAX_OVERHEAD",
                 "DTLS_ERR_INTERNAL", "DTLS_ERR_ARG", "DTLS_ERR_SEQ", "DTLS_ERR_SPACE",
                 "DTLS_ERR_AUTH"):
        assert getattr(lib, name) == defines[name], name


def test_python_enums_match_header() -> None:
    d = header_defines()
    assert d["DTLS_HEADER_LEN"] == HEADER_LEN
    assert d["DTLS_MAX_PLAINTEXT"] == MAX_PLAINTEXT
    assert d["DTLS_MAX_WINDOW"] == MAX_WINDOW
    for status in OpenStatus:
        assert d[f"DTLS_{status.name}"] == status.value
    for cipher in BulkCipher:
        assert d[f"DTLS_CIPHER_{cipher.name}"] == cipher.value


def test_mac_ids_match_sha_header() -> None:
    text = (HEADER.parent / "sha.h").read_text()
    for mac in (MacAlgorithm.SHA1, MacAlgorithm.SHA256, MacAlgorithm.SHA384):
        assert re.search(rf"#define DTLS_MAC_{mac.name}\s+{mac.value}\b", text), mac


@pytest.mark.parametrize("name", ["DTLS_MAX_FRAGMENT", "DTLS_MAX_SEQ", "DTLS_WINDOW_WORDS"])
def test_computed_defines_evaluate(name: str) -> None:
    assert name in header_defines()
