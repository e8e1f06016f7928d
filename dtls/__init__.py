"""dtls: Datagram TLS for Python, with a C record layer.

`dtls.record_backend` is "c" when the C record layer was built, "python" when the
pure-Python fallback is in use (see dtls.record).
"""

from .protection import NULL_PROTECTION, BulkCipher, MacAlgorithm, Protection
from .record import BACKEND as record_backend
from .record import CipherState, ReplayWindow, split_records
from .recordbase import (
    DTLS1_0,
    DTLS1_2,
    ContentType,
    OpenResult,
    OpenStatus,
    RecordBatch,
    RecordHeader,
    RecordLayerError,
    SequenceExhausted,
)

__version__ = "0.1.0"

__all__ = [
    "DTLS1_0",
    "DTLS1_2",
    "NULL_PROTECTION",
    "BulkCipher",
    "CipherState",
    "ContentType",
    "DtlsSocket",
    "MacAlgorithm",
    "OpenResult",
    "OpenStatus",
    "Protection",
    "RecordBatch",
    "RecordHeader",
    "RecordLayerError",
    "ReplayWindow",
    "SequenceExhausted",
    "__version__",
    "accept",
    "connect",
    "record_backend",
    "split_records",
]
from . import aio  # noqa: F401  (asyncio front-end: dtls.aio.connect, dtls.aio.serve)
from .sock import DtlsSocket, accept, connect  # blocking, UDP-like front-end
