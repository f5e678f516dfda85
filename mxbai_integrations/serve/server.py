"""Running the app with uvicorn: connection timeouts, a pre-bound socket, graceful shutdown.

uvicorn closes a keep-alive connection that stays idle after a response (``keep_alive_timeout_s``)
but not one that never sends a complete request head: a client that connects and sends nothing,
or a request line and then nothing, would hold a connection forever. ``build_server`` uses
uvicorn's own HTTP protocol with one more timer, ``header_timeout_s``, armed when a connection
opens and after each response and cancelled by nothing but a complete request head; the body then
has the app's own ``body_timeout_s`` (``ServeLimits``).

The CLI binds its port before it announces anything (a busy port is one line, exit 2) and hands
the bound socket to :func:`run_server` as ``sock``.

Examples:
    >>> from mxbai_integrations.serve import create_app
    >>> from mxbai_integrations.serve.server import run_server
    >>> run_server(create_app("./mxbai-rerank-xsmall-v1-onnx"), port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from mxbai_integrations.serve.config import ServerOptions

__all__ = ["build_server", "header_timeout_protocol", "run_server"]


def header_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, else h11) that closes a connection without a request head in time.

    The timer runs from the connection's start, and again from the end of each response; when it
    fires while no request is being handled (none started, or the last one answered and the next
    one's head incomplete), the connection is closed. A request being handled is left alone.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class HeaderTimeoutProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            if not self.transport.is_closing():
                self._header_timer = self.loop.call_later(timeout_s, self._on_header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _on_header_timeout(self) -> None:
            self._header_timer = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return  # a request is being handled; its body has the app's own timeout
            if not self.transport.is_closing():
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = HeaderTimeoutProtocol.__qualname__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeoutProtocol


def build_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    graceful_timeout_s: float | None = 30.0,
    keep_alive_timeout_s: float = 5.0,
    header_timeout_s: float = 10.0,
) -> Any:
    """A ``uvicorn.Server`` for ``app`` with this package's connection timeouts (``run_server`` runs one).

    Args are those of :func:`run_server` (checked as :class:`~mxbai_integrations.serve.config.ServerOptions`
    checks them); ``graceful_timeout_s=None`` waits for requests in flight without a limit.
    """
    import uvicorn

    ServerOptions(graceful_timeout_s=graceful_timeout_s if graceful_timeout_s is not None else 30.0,
                  keep_alive_timeout_s=keep_alive_timeout_s, header_timeout_s=header_timeout_s)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=graceful_timeout_s, timeout_keep_alive=keep_alive_timeout_s,
                            http=header_timeout_protocol(header_timeout_s))
    return uvicorn.Server(config)


def run_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    graceful_timeout_s: float | None = 30.0,
    keep_alive_timeout_s: float = 5.0,
    header_timeout_s: float = 10.0,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM; requests in flight and queued get ``graceful_timeout_s``.

    Requests still waiting when the graceful timeout runs out are answered 503 with ``Retry-After``
    (by the app's ``RequestGuard``), never dropped without an answer.

    Args:
        app: the ASGI app (``create_app(...)``).
        host / port: where to listen, when ``sock`` is not given (also what the logs say).
        log_level: uvicorn's log level.
        graceful_timeout_s: seconds requests get to finish after SIGTERM (None: no limit).
        keep_alive_timeout_s: an idle keep-alive connection is closed after this long.
        header_timeout_s: a connection must send a complete request head this soon after it
            opens or after its previous response.
        sock: a socket already bound (listening or not); uvicorn listens on it instead of
            binding ``host:port`` itself. The caller keeps ownership (closes it after).
    """
    server = build_server(app, host=host, port=port, log_level=log_level, graceful_timeout_s=graceful_timeout_s,
                          keep_alive_timeout_s=keep_alive_timeout_s, header_timeout_s=header_timeout_s)
    server.run(sockets=[sock] if sock is not None else None)
