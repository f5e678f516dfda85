"""Serve the reranker over HTTP: the rerank APIs existing clients speak, with cross-request batching.

    mxbai-onnx serve ./mxbai-rerank-base-v2-onnx --port 8000

    from mxbai_integrations.serve import create_app
    app = create_app("./mxbai-rerank-base-v2-onnx")      # any ASGI server; uvicorn in the CLI

Endpoints: Cohere's ``POST /v1/rerank`` and ``/v2/rerank`` (also Jina-style clients),
text-embeddings-inference's ``POST /rerank``, ``GET /health``, ``/info`` and Prometheus ``/metrics``.
The same app is the ingress of the Ray Serve deployment in :mod:`mxbai_integrations.serve.ray_serve`;
:mod:`mxbai_integrations.serve.ray_data` re-scores datasets offline.

Needs the ``serve`` extra (fastapi, uvicorn, prometheus-client); Ray needs the ``ray`` extra.
"""

from __future__ import annotations

from mxbai_integrations.serve.app import BatchOptions, ServeLimits, create_app

__all__ = ["BatchOptions", "ServeLimits", "create_app"]
