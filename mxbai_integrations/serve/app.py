"""The HTTP app: ``create_app()``, used as is by the tests, ``mxbai-onnx serve`` and the Ray Serve deployment.

This module keeps routes, error handlers and the OpenAPI schema; the endpoints' logic is
:class:`~mxbai_integrations.serve.service.RerankService`, the body parsing
:mod:`~mxbai_integrations.serve.body`, the middleware :mod:`~mxbai_integrations.serve.middleware`.

Bad input never reaches the model, and every answer other than 200 is the JSON
``{"message", "error", "error_type", "field"}``, counted in ``mxbai_rerank_errors_total``:

- 422 ``validation``: a malformed body (not UTF-8, not JSON, a lone surrogate, nested too deeply,
  a wrong type; strict: ``true`` and ``"1"`` are not integers), a missing field, an instruction
  for a v1 model;
- 413 ``too_large``: a body, document list, document, query or instruction over the limits;
- 408 ``timeout``: a body not received in time;
- 404 / 405: no such path or method;
- 503 ``queue_full`` / ``not_ready`` (loading, failed to load, shutting down): retry, after the
  ``Retry-After`` every 503 carries;
- 500 ``non_finite``: the model scored some of this request's documents NaN/inf (named); the
  other requests batched with it get their scores;
- 500 ``internal``: a bug; the connection stays usable.

Tokenizing runs in a thread pool and the model in the engine's worker thread, so the event loop
only parses, gathers and answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from pydantic import BaseModel
    from pydantic.json_schema import models_json_schema
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'mxbai_integrations.serve needs fastapi, uvicorn and prometheus-client: pip install "mxbai-integrations[serve]"'
    ) from exc

from mxbai_integrations import __version__
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.serve.body import parse_body, validation_error
from mxbai_integrations.serve.config import BatchOptions, ServeLimits, ServerOptions
from mxbai_integrations.serve.errors import RETRY_AFTER_S, ServeError
from mxbai_integrations.serve.middleware import RequestGuard, error_response
from mxbai_integrations.serve.schemas import ErrorBody, Health, Info, RerankResponse, TeiRank, request_models
from mxbai_integrations.serve.server import run_server
from mxbai_integrations.serve.service import EngineFactory, ModelSource, RerankService

__all__ = ["BatchOptions", "RerankService", "ServeLimits", "ServerOptions", "create_app", "run_server"]

M = TypeVar("M", bound=BaseModel)
# Bodies larger than this are parsed in the thread pool, off the event loop.
_PARSE_INLINE_BYTES = 64 * 1024
_ERROR_KINDS_BY_STATUS = {404: "not_found", 405: "method_not_allowed", 408: "timeout", 413: "too_large"}


def create_app(
    reranker_or_model: ModelSource,
    *,
    limits: ServeLimits | None = None,
    batching: BatchOptions | None = None,
    reranker_options: RerankerOptions | Mapping[str, Any] | None = None,
    engine: EngineFactory | None = None,
    title: str = "mxbai-rerank",
) -> FastAPI:
    """The rerank server as an ASGI app: Cohere ``/v1/rerank`` ``/v2/rerank``, TEI ``/rerank``, health, metrics.

    Args:
        reranker_or_model: a loaded ``MxbaiReranker`` (ready at once); or a model (artifact
            directory, hub id) or a zero-argument factory, loaded in a thread after startup, so
            ``/health`` answers 503 "loading" until it is ready.
        limits: per-request limits, the queue bound and the body timeout.
        batching: cross-request batching (``BatchOptions(max_batch_requests=1)`` turns it off).
        reranker_options: a ``RerankerOptions`` (or a dict of its fields) for a model to load.
        engine: what runs the model, given the reranker and a per-pass metrics callback (default:
            the local ``CrossRequestBatcher``; the Ray Serve deployment passes its ``@serve.batch``).
        title: the OpenAPI title.

    Returns:
        A FastAPI app; serve it with ``run_server`` (uvicorn) or any ASGI server. Its
        ``state.mxbai`` is the :class:`RerankService` (status, engine, limits).

    Examples:
        >>> from fastapi.testclient import TestClient
        >>> from mxbai_integrations import MxbaiReranker
        >>> from mxbai_integrations.serve import create_app
        >>> app = create_app(MxbaiReranker("./mxbai-rerank-xsmall-v1-onnx"))  # doctest: +SKIP
        >>> with TestClient(app) as client:  # doctest: +SKIP
        ...     client.post("/v2/rerank", json={"query": "capital of France?", "top_n": 1,
        ...                                     "documents": ["Paris is the capital.", "Berlin."]}).json()
        {'id': '…', 'results': [{'index': 0, 'relevance_score': 0.93}],
         'meta': {'api_version': {'version': '2'}, 'billed_units': {'search_units': 1}},
         'model': 'mixedbread-ai/mxbai-rerank-xsmall-v1', 'usage': {'total_tokens': 21}}
    """
    service = RerankService(reranker_or_model, limits=limits, batching=batching, reranker_options=reranker_options,
                            engine=engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()  # finishes what is queued; uvicorn already let in-flight ones end

    app = FastAPI(title=title, version=__version__, lifespan=lifespan,
                  description="mxbai-rerank on ONNX Runtime: Cohere, Jina and text-embeddings-inference rerank APIs")
    app.state.mxbai = service
    app.state.metrics_registry = service.metrics.registry
    _add_error_handlers(app, service)
    _add_routes(app, service)
    app.add_middleware(RequestGuard, max_body_bytes=service.limits.max_body_bytes,
                       body_timeout_s=service.limits.body_timeout_s, metrics=service.metrics)
    return app


def _add_error_handlers(app: FastAPI, service: RerankService) -> None:
    metrics = service.metrics

    @app.exception_handler(ServeError)
    async def on_serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return error_response(exc, metrics)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc.errors(), b"", fields=()), metrics)

    @app.exception_handler(HTTPException)
    async def on_http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kind = _ERROR_KINDS_BY_STATUS.get(exc.status_code, "validation" if exc.status_code < 500 else "internal")
        response = error_response(ServeError(exc.status_code, kind, str(exc.detail)), metrics)  # type: ignore[arg-type]
        response.headers.update(exc.headers or {})
        return response


def _add_routes(app: FastAPI, service: RerankService) -> None:
    cohere_model, tei_model = request_models(service.limits)
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody} for code in (408, 413, 422, 500, 503)}

    async def parse(request: Request, model: type[M]) -> M:
        raw = await request.body()
        if len(raw) > _PARSE_INLINE_BYTES:
            return await run_in_threadpool(parse_body, raw, model)
        return parse_body(raw, model)

    @app.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True, responses=errors,
              summary="Cohere v1 rerank (also Jina)", openapi_extra=_request_body(cohere_model))
    async def rerank_v1(request: Request) -> RerankResponse:
        return await service.rerank_cohere(await parse(request, cohere_model), "1")

    @app.post("/v2/rerank", response_model=RerankResponse, response_model_exclude_none=True, responses=errors,
              summary="Cohere v2 rerank", openapi_extra=_request_body(cohere_model))
    async def rerank_v2(request: Request) -> RerankResponse:
        return await service.rerank_cohere(await parse(request, cohere_model), "2")

    @app.post("/rerank", response_model=list[TeiRank], response_model_exclude_none=True, responses=errors,
              summary="text-embeddings-inference rerank", openapi_extra=_request_body(tei_model))
    async def rerank_tei(request: Request) -> list[TeiRank]:
        return await service.rerank_tei(await parse(request, tei_model))

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health() -> JSONResponse:
        body, status = service.health()
        headers = {"Retry-After": str(RETRY_AFTER_S["not_ready"])} if status == 503 else None
        return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)

    @app.get("/info", response_model=Info, responses={503: {"model": ErrorBody}})
    async def info() -> Info:
        return service.info()

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.openapi = _openapi_with(app, [cohere_model, tei_model])  # type: ignore[method-assign]


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that parses its body itself (strictly, see ``body.py``)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _openapi_with(app: FastAPI, models: list[type[BaseModel]]) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with the request models (and the limits in them) among the components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            _, defs = models_json_schema([(m, "validation") for m in models],
                                         ref_template="#/components/schemas/{model}")
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
