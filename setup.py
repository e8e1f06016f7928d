"""Build the C record layer with cffi; fall back to the pure-Python record layer without it.

Environment: DTLS_REQUIRE_C=1 makes a failed C build an error (CI sets it, so a broken
build cannot hide behind the fallback); DTLS_NO_C=1 skips the C build entirely.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

_FALLBACK_MSG = """
************************************************************************
dtls: the C record layer could not be built ({why}).
dtls is installed with its pure-Python record layer, which works but is slower.
For the C layer install a C compiler and the OpenSSL headers (e.g.
`apt-get install gcc libssl-dev`) and reinstall.  `dtls.record_backend` says
which layer is active.
************************************************************************
"""


class OptionalBuildExt(build_ext):
    """build_ext that degrades to the pure-Python backend instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing, link failure
            self._fallback(exc)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)

    def _fallback(self, exc: Exception) -> None:
        if os.environ.get("DTLS_REQUIRE_C") == "1":
            raise exc
        sys.stderr.write(_FALLBACK_MSG.format(why=f"{type(exc).__name__}: {exc}"))


kwargs = {}
if os.environ.get("DTLS_NO_C") != "1":
    kwargs["cffi_modules"] = ["csrc/build_record.py:ffibuilder"]

setup(cmdclass={"build_ext": OptionalBuildExt}, **kwargs)
