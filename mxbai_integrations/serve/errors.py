"""Every answer other than 200 is one JSON shape, and which one a failure gets is decided by its type.

``{"message", "error", "error_type", "field"}``: ``message`` for Cohere clients, ``error`` (the same
text) for text-embeddings-inference clients, ``error_type`` machine-readable, ``field`` the request
field at fault (``"query"``, ``"documents[3]"``, ``"body"``) or null. Every 503 carries
``Retry-After``.

Classification is by exception type, never by where it was raised (:func:`classify`):

- :class:`~mxbai_integrations.errors.ArgumentError` (and its subclasses) about a request field
  (``query``, ``documents[i]``, ``instruction``): the caller's mistake, 422 naming that field
  (one about anything else was passed by the server itself: 500);
- :class:`~mxbai_integrations.errors.NonFiniteScoreError`: 500 ``non_finite``, naming the caller's
  own documents that scored NaN/inf (the model's failure on those inputs, not a malformed request,
  and only the requests that own such rows get it);
- anything else: 500 ``internal`` (a bug is never reported as the client's mistake).

Examples:
    >>> from mxbai_integrations.errors import ArgumentError
    >>> err = classify(ArgumentError("instruction is only supported by v2 rerankers"), documents_field="documents")
    >>> err.status, err.kind, err.field
    (422, 'validation', 'instruction')
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from mxbai_integrations.errors import ArgumentError, NonFiniteScoreError

__all__ = ["ERROR_KINDS", "RETRY_AFTER_S", "ErrorKind", "ServeError", "classify"]

ErrorKind = Literal["validation", "too_large", "timeout", "not_found", "method_not_allowed", "queue_full",
                    "not_ready", "non_finite", "internal"]
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
# Seconds a client should wait before retrying, sent as Retry-After with every 503.
RETRY_AFTER_S: dict[str, int] = {"queue_full": 1, "not_ready": 5}
_DEFAULT_RETRY_AFTER_S = 5
# The argument name an ArgumentError message starts with: "query must ...", "documents[3] must ...".
_LEADING_NAME = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])?)\b")
_REQUEST_ARGUMENTS = ("query", "documents", "instruction", "top_n")


class ServeError(Exception):
    """An answer other than 200, raised where the input is checked and turned into JSON by one handler.

    Args:
        status: the HTTP status.
        kind: the ``error_type``.
        message: what went wrong, starting with the field's name when there is one.
        field: the request field at fault, or None.
    """

    def __init__(self, status: int, kind: ErrorKind, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` on every 503, so clients and load balancers know to come back."""
        if self.status == 503:
            return {"Retry-After": str(RETRY_AFTER_S.get(self.kind, _DEFAULT_RETRY_AFTER_S))}
        return {}

    def body(self) -> dict[str, str | None]:
        return {"message": self.message, "error": self.message, "error_type": self.kind, "field": self.field}


def not_ready(why: str) -> ServeError:
    """503: loading, failed to load, or shutting down; the client should retry (elsewhere)."""
    return ServeError(503, "not_ready", why)


def classify(exc: BaseException, *, documents_field: str) -> ServeError:
    """The answer for an exception from encoding or scoring one request.

    Args:
        exc: what was raised.
        documents_field: the request's name for its documents (``"documents"`` or TEI's ``"texts"``),
            used to name documents in the answer.
    """
    if isinstance(exc, ServeError):
        return exc
    if isinstance(exc, ArgumentError):
        message = str(exc)
        match = _LEADING_NAME.match(message)
        name = match.group(1) if match else ""
        if name.split("[")[0] in _REQUEST_ARGUMENTS:
            if name.startswith("documents"):
                renamed = documents_field + name[len("documents"):]
                message, name = renamed + message[len(name):], renamed
            return ServeError(422, "validation", message, name)
        # An argument the request does not carry: the server passed it, so the mistake is ours.
    if isinstance(exc, NonFiniteScoreError):
        fields = [f"{documents_field}[{i}]" for i in exc.indices]
        shown = ", ".join(fields[:20]) + (f" and {len(fields) - 20} more" if len(fields) > 20 else "")
        return ServeError(500, "non_finite", f"{fields[0] if fields else documents_field}: the model returned a "
                          f"non-finite score (NaN or inf) for {shown} (artifact dtype {exc.dtype}, provider "
                          f"{exc.provider})", fields[0] if fields else documents_field)
    return ServeError(500, "internal", f"internal error: {type(exc).__name__}")
