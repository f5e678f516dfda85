"""The ASGI layer around the app: what happens to every request before and after the endpoints.

``RequestGuard`` (pure ASGI, no buffering of the response):

- counts every answer of the rerank endpoints (status, latency);
- reads the body itself, counting bytes (a body over ``max_body_bytes`` is a 413 whatever the
  client declared) within ``body_timeout_s`` (a stalled upload is a 408 and the connection is
  closed), and replays it to the app;
- turns an exception that escaped the app into the JSON 500 and keeps the connection usable, so a
  keep-alive client never sees its connection dropped without ``Connection: close``;
- answers a request whose task is cancelled before it was answered (uvicorn does that when the
  graceful shutdown timeout runs out) with the JSON 503 and ``Retry-After``, not a plain-text 500.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mxbai_integrations.serve.errors import ServeError
from mxbai_integrations.serve.metrics import ServeMetrics

__all__ = ["RERANK_PATHS", "RequestGuard", "error_response"]

logger = logging.getLogger(__name__)

RERANK_PATHS = ("/v1/rerank", "/v2/rerank", "/rerank")


def error_response(error: ServeError, metrics: ServeMetrics, *, close: bool = False) -> JSONResponse:
    """The JSON answer for ``error``, counted in ``errors_total``; ``close`` ends the connection after it."""
    metrics.on_error(error.kind)
    headers = {**error.headers, **({"Connection": "close"} if close else {})}
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


class _Answer:
    """``send``, remembering whether an answer started (and its status) for the metrics and the fallbacks."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started, self.status = True, message["status"]
        await self._send(message)


class RequestGuard:
    """ASGI middleware: request metrics, the body's size and time limits, and the last-resort JSON errors.

    Args:
        app: the FastAPI app inside.
        max_body_bytes: bytes per request body at most.
        body_timeout_s: seconds to receive a body once the request head is in.
        metrics: where answers and errors are counted.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout_s: float, metrics: ServeMetrics) -> None:
        self.app, self.max_body_bytes, self.body_timeout_s, self.metrics = app, max_body_bytes, body_timeout_s, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in RERANK_PATHS else None
        started = time.perf_counter()
        answer = _Answer(send)
        try:
            await self._handle(scope, receive, answer)
        finally:
            if endpoint is not None:
                self.metrics.requests.labels(endpoint=endpoint, status=str(answer.status)).inc()
                self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)

    async def _handle(self, scope: Scope, receive: Receive, answer: _Answer) -> None:
        try:
            if scope["method"] not in ("POST", "PUT", "PATCH"):
                await self.app(scope, receive, answer)
                return
            body, error = await self._read_body(scope, receive)
            if error is not None:
                if error.status == 499:  # the client left before sending its body: nobody to answer
                    answer.status = 499
                    return
                # A body not read to its end (408) leaves the connection unusable: close it.
                await error_response(error, self.metrics, close=error.status == 408)(scope, receive, answer)
                return
            await self.app(scope, _replay(body, receive), answer)
        except asyncio.CancelledError:
            if answer.started:
                raise
            # The server gave up on this request (graceful shutdown timeout): tell the client to retry.
            error = ServeError(503, "not_ready", "the server is shutting down and did not get to this request; "
                               "retry it")
            await error_response(error, self.metrics, close=True)(scope, receive, answer)
        except Exception as exc:
            if answer.started:
                raise
            logger.error("internal error on %s %s", scope["method"], scope["path"], exc_info=exc)
            error = ServeError(500, "internal", f"internal error: {type(exc).__name__}")
            await error_response(error, self.metrics)(scope, receive, answer)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, ServeError | None]:
        """The whole body, or the error to answer instead (413 too large, 408 too slow, 499 gone).

        An oversized body is still read to its end (counted, not kept), so the client, which sends
        before it reads, sees the 413 rather than a reset connection.
        """
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        try:
            while True:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
                if message["type"] == "http.disconnect":
                    return b"", ServeError(499, "validation", "client disconnected")
                chunk = message.get("body", b"")
                size += len(chunk)
                too_large = too_large or size > self.max_body_bytes
                if not too_large:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.TimeoutError:
            return b"", ServeError(408, "timeout", f"body: not received within {self.body_timeout_s:g} s "
                                   f"({size} bytes arrived)", "body")
        if too_large:
            return b"", ServeError(413, "too_large", f"body: the request body is over {self.max_body_bytes} bytes",
                                   "body")
        return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the server would

    return replay
