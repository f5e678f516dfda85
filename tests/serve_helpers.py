"""Test helpers for the HTTP server: uvicorn on 127.0.0.1 in a thread, and a reranker that can be held.

The reranker is held at ``Scorer.run_batch``, the public seam every model pass goes through (the
server's batcher, Ray's ``@serve.batch`` and ``MxbaiReranker.score`` alike).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from mxbai_integrations import MxbaiReranker


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``run_server``'s uvicorn server running ``app`` on a free loopback port in a daemon thread (a real socket)."""

    def __init__(self, app: Any, *, graceful_timeout_s: float = 30.0, keep_alive_timeout_s: float = 5.0,
                 header_timeout_s: float = 10.0) -> None:
        from mxbai_integrations.serve.server import build_server

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = build_server(app, host="127.0.0.1", port=self.port, log_level="warning",
                                   graceful_timeout_s=graceful_timeout_s, keep_alive_timeout_s=keep_alive_timeout_s,
                                   header_timeout_s=header_timeout_s)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class HeldReranker(MxbaiReranker):
    """An MxbaiReranker whose model passes wait for ``release`` (to fill a queue, or catch a request in flight).

    Its scorer's ``run_batch`` (the public seam) is wrapped on this instance only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        run_batch = self.scorer.run_batch

        def held(ids: Any, mask: Any) -> Any:
            self.entered.set()
            if not self.gate.wait(60):
                raise TimeoutError("the test never released the model")
            return run_batch(ids, mask)

        self.scorer.run_batch = held  # type: ignore[method-assign]

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()
