"""Serve the reranker over HTTP: the rerank APIs existing clients speak, with cross-request batching.

    mxbai-onnx serve ./mxbai-rerank-base-v2-onnx --port 8000

    from mxbai_integrations.serve import create_app, run_server
    app = create_app("./mxbai-rerank-base-v2-onnx")      # any ASGI server; run_server is uvicorn

Endpoints: Cohere's ``POST /v1/rerank`` and ``/v2/rerank`` (also Jina-style clients),
text-embeddings-inference's ``POST /rerank``, ``GET /health``, ``/info`` and Prometheus ``/metrics``.
The same app is the ingress of the Ray Serve deployment in :mod:`mxbai_integrations.serve.ray_serve`;
:mod:`mxbai_integrations.serve.ray_data` re-scores datasets offline.

Needs the ``serve`` extra (fastapi, uvicorn, prometheus-client); Ray needs the ``ray`` extra.
"""

from __future__ import annotations

from typing import Any

from mxbai_integrations.serve.config import BatchOptions, ServeLimits, ServerOptions

__all__ = ["BatchOptions", "RerankService", "ServeLimits", "ServerOptions", "create_app", "run_server"]


def __getattr__(name: str) -> Any:
    # The app needs the `serve` extra; the records above do not (the CLI builds its flags from them).
    if name in ("create_app", "run_server", "RerankService"):
        from mxbai_integrations.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
