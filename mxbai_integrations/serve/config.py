"""What the server enforces, how it batches and how it treats connections: plain records.

Importable without the ``serve`` extra: the CLI builds its ``serve`` flags from these fields
(``options.add_dataclass_arguments``), so a limit is defined once, with its default and help text,
for the flags, ``create_app``, ``run_server`` and Ray.

Examples:
    >>> from mxbai_integrations.serve.config import ServeLimits
    >>> ServeLimits(max_documents=100).max_document_chars
    100000
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mxbai_integrations.checks import check_positive_int
from mxbai_integrations.errors import ArgumentError


def _help(text: str, metavar: str = "N", flag: str | None = None) -> dict[str, Any]:
    return {"help": text, "metavar": metavar, **({"flag": flag} if flag else {})}


def _check_seconds(name: str, value: Any, *, maximum: float = 86_400.0) -> None:
    """A positive, finite number of seconds (``bool`` is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= maximum \
            or not math.isfinite(value):
        raise ArgumentError(f"{name} must be a number of seconds in (0, {maximum:g}], got {value!r}")


@dataclass(frozen=True)
class ServeLimits:
    """What one request may carry; beyond it the server answers 413 (or 503 for the queue).

    Each limit also appears in the OpenAPI schema (``maxItems``, ``maxLength``), so a client can
    read what the server enforces; exceeding one is still a 413, not a 422.

    Attributes:
        max_documents: documents per request.
        max_document_chars: characters per document (longer ones are refused, not cut), also for
            the text that ``rank_fields`` joins from an object document.
        max_query_chars: characters per query, and per v2 instruction (longer ones are refused,
            not cut). Only ``max_length`` tokens of a query are ever used, but reading a huge one
            still costs time and memory.
        max_body_bytes: bytes per request body, checked before the JSON is parsed.
        max_queue: requests waiting for the model; beyond it 503, so a client backs off.
        body_timeout_s: seconds a client may take to send a request body once its headers are in;
            slower is a 408 (a stalled upload must not hold a connection and a task forever).
    """

    max_documents: int = field(default=1000, metadata=_help("documents per request (default 1000; more is a 413)"))
    max_document_chars: int = field(default=100_000, metadata=_help(
        "characters per document (default 100000; more is a 413)"))
    max_query_chars: int = field(default=100_000, metadata=_help(
        "characters per query (default 100000; more is a 413)"))
    max_body_bytes: int = field(default=16 * 2**20, metadata=_help(
        "bytes per request body (default 16 MiB; more is a 413)"))
    max_queue: int = field(default=256, metadata=_help("requests waiting for the model (default 256; more is a 503)"))
    body_timeout_s: float = field(default=30.0, metadata=_help(
        "seconds to receive a request body once its headers are in (default 30; slower is a 408)", "S",
        "--body-timeout"))

    def __post_init__(self) -> None:
        for name in ("max_documents", "max_document_chars", "max_query_chars", "max_body_bytes", "max_queue"):
            check_positive_int(name, getattr(self, name), allow_none=False)
        _check_seconds("body_timeout_s", self.body_timeout_s)


@dataclass(frozen=True)
class BatchOptions:
    """How long and how much to gather before running the model.

    Attributes:
        max_wait_ms: after the first request arrives, wait this long for others (requests that
            arrive while the model is busy join the next batch without waiting).
        max_batch_requests: requests per gathered batch at most; 1 turns cross-request batching off
            (each request runs alone, one after the other).
        max_batch_documents: documents per gathered batch at most (bounds the latency a small
            request pays for sharing a batch with large ones).
        max_batch_tokens: tokens per gathered batch at most; the model itself still runs in
            sub-batches of the reranker's own ``max_batch_tokens``.
    """

    max_wait_ms: float = field(default=5.0, metadata=_help(
        "how long the first request waits for others to batch with (default 5)", "MS"))
    max_batch_requests: int = field(default=64, metadata=_help("requests per model pass at most (default 64)"))
    max_batch_documents: int = field(default=1024, metadata=_help("documents per model pass at most (default 1024)"))
    max_batch_tokens: int = field(default=262_144, metadata={
        **_help("tokens per gathered batch at most (default 262144)"), "flag": "--max-gather-tokens",
        "dest": "gather_max_batch_tokens"})

    def __post_init__(self) -> None:
        if isinstance(self.max_wait_ms, bool) or not isinstance(self.max_wait_ms, (int, float)) \
                or not 0 <= self.max_wait_ms <= 10_000:
            raise ArgumentError(f"max_wait_ms must be a number of milliseconds in [0, 10000], "
                                f"got {self.max_wait_ms!r}")
        for name in ("max_batch_requests", "max_batch_documents", "max_batch_tokens"):
            check_positive_int(name, getattr(self, name), allow_none=False)

    @property
    def enabled(self) -> bool:
        return self.max_batch_requests > 1


@dataclass(frozen=True)
class ServerOptions:
    """How ``run_server`` treats connections; the field names are ``run_server``'s keyword arguments.

    Attributes:
        graceful_timeout_s: after SIGTERM/SIGINT, seconds that requests in flight and queued get to
            finish; those still waiting then are answered 503 with ``Retry-After``.
        keep_alive_timeout_s: an idle keep-alive connection is closed after this many seconds.
        header_timeout_s: a connection must deliver a complete request head this many seconds after
            it opens (or after its previous response); otherwise it is closed. Bounds connections
            that send nothing, or a request line and then nothing.
    """

    graceful_timeout_s: float = field(default=30.0, metadata={**_help(
        "seconds that requests in flight and queued get to finish after SIGTERM (default 30); later ones get a "
        "503", "S", "--graceful-timeout"), "dest": "graceful_timeout"})
    keep_alive_timeout_s: float = field(default=5.0, metadata=_help(
        "seconds an idle keep-alive connection stays open (default 5)", "S", "--keep-alive-timeout"))
    header_timeout_s: float = field(default=10.0, metadata=_help(
        "seconds a connection has to send a complete request head (default 10)", "S", "--header-timeout"))

    def __post_init__(self) -> None:
        for name in ("graceful_timeout_s", "keep_alive_timeout_s", "header_timeout_s"):
            _check_seconds(name, getattr(self, name))
