"""The HTTP app: ``create_app()``, used as is by the tests, ``mxbai-onnx serve`` and the Ray Serve deployment.

Bad input never reaches the model: a malformed body is a 422 naming the field, a body, request or
document over the limits a 413, a full queue (or a model still loading) a 503 to retry, all as JSON
``{"message", "error", "error_type", "field"}``. Tokenizing runs in a thread pool and the model in
the batcher's worker thread, so the event loop only parses, gathers and answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.concurrency import run_in_threadpool
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'mxbai_integrations.serve needs fastapi, uvicorn and prometheus-client: pip install "mxbai-integrations[serve]"'
    ) from exc

from mxbai_integrations import __version__
from mxbai_integrations.reranker import MxbaiReranker
from mxbai_integrations.serve.batcher import (
    BatchOptions,
    BatchStats,
    CrossRequestBatcher,
    Engine,
    NotReadyError,
    QueueFullError,
    ScoreJob,
)
from mxbai_integrations.serve.schemas import (
    ApiVersion,
    CohereDocument,
    ErrorBody,
    Health,
    Info,
    RerankDocument,
    RerankMeta,
    RerankRequest,
    RerankResponse,
    RerankResult,
    TeiRank,
    TeiRerankRequest,
    Usage,
)

__all__ = ["BatchOptions", "ServeLimits", "create_app", "run_server"]

logger = logging.getLogger(__name__)

RERANK_PATHS = ("/v1/rerank", "/v2/rerank", "/rerank")
ErrorKind = Literal["validation", "too_large", "queue_full", "not_ready", "internal"]
EngineFactory = Callable[[MxbaiReranker, Callable[[BatchStats], None]], Engine]
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Field names of the request models, to name the field at fault from pydantic's error location
# (which also carries union member tags such as "str" or "CohereDocument").
_FIELDS = set(RerankRequest.model_fields) | set(TeiRerankRequest.model_fields) | set(CohereDocument.model_fields)


@dataclass(frozen=True)
class ServeLimits:
    """What one request may carry; beyond it the server answers 413 (or 503 for the queue).

    Attributes:
        max_documents: documents per request.
        max_document_chars: characters per document (longer ones are refused, not cut).
        max_body_bytes: bytes per request body, checked before the JSON is parsed.
        max_queue: requests waiting for the model; beyond it 503, so a client backs off.
    """

    max_documents: int = 1000
    max_document_chars: int = 100_000
    max_body_bytes: int = 16 * 2**20
    max_queue: int = 256

    def __post_init__(self) -> None:
        for name in ("max_documents", "max_document_chars", "max_body_bytes", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")


class ServeError(Exception):
    """An answer other than 200, raised where the input is checked and turned into JSON by one handler."""

    def __init__(self, status: int, kind: ErrorKind, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field


class _Metrics:
    """Prometheus metrics in the app's own registry (two apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mxbai_rerank_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("mxbai_rerank_request_seconds", "request latency, body read to response sent",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.documents = Counter("mxbai_rerank_documents", "documents scored", registry=r)
        self.tokens = Counter("mxbai_rerank_tokens", "tokens scored (query, document and prompt)", registry=r)
        self.errors = Counter("mxbai_rerank_errors", "error answers by kind", ["kind"], registry=r)
        self.batch_requests = Histogram("mxbai_rerank_batch_requests", "requests per model pass",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_documents = Histogram("mxbai_rerank_batch_documents", "documents per model pass",
                                         buckets=(1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), registry=r)
        self.batch_seconds = Histogram("mxbai_rerank_batch_seconds", "model time per pass",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("mxbai_rerank_queue_depth", "requests waiting for the model", registry=r)
        for kind in ("validation", "too_large", "queue_full", "not_ready", "internal"):
            self.errors.labels(kind=kind)  # exported at 0 from the start, so rates work

    def on_batch(self, stats: BatchStats) -> None:
        self.batch_requests.observe(stats.requests)
        self.batch_documents.observe(stats.documents)
        self.batch_seconds.observe(stats.seconds)


@dataclass
class _State:
    status: Literal["ok", "loading", "failed", "stopping"] = "loading"
    detail: str | None = None
    reranker: MxbaiReranker | None = None
    engine: Engine | None = None


def _error_response(status: int, kind: ErrorKind, message: str, field: str | None, metrics: _Metrics) -> JSONResponse:
    metrics.errors.labels(kind=kind).inc()
    body = ErrorBody(message=message, error=message, error_type=kind, field=field)
    return JSONResponse(body.model_dump(), status_code=status)


def _field_name(loc: Sequence[int | str]) -> str:
    parts: list[str] = []
    for p in (loc[1:] if loc and loc[0] == "body" else loc):
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in _FIELDS:
            parts.append(f".{p}" if parts else p)
        else:
            break
    return "".join(parts) or "body"


class _Guard:
    """ASGI middleware: request metrics for every answer, and the body-size limit before any parsing.

    The body is read here (counted, not buffered past the limit) and replayed to the app, so a
    too-large body is a 413 whatever the client declared in Content-Length.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: _Metrics) -> None:
        self.app, self.max_body_bytes, self.metrics = app, max_body_bytes, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in RERANK_PATHS else None
        started = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body, too_large, gone = await self._read_body(scope, receive)
                if gone:  # the client left before sending its body: nobody to answer
                    status = 499
                    return
                if too_large:
                    response = _error_response(413, "too_large", f"body: the request body is over "
                                               f"{self.max_body_bytes} bytes", "body", self.metrics)
                    await response(scope, receive, send_counted)
                    return
                await self.app(scope, _replay(body, receive), send_counted)
            else:
                await self.app(scope, receive, send_counted)
        finally:
            if endpoint is not None:
                self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
                self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool, bool]:
        """(body, over the limit, client disconnected)."""
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        # Drain what the client sends (up to a bound) even when refusing it, so it reads the 413
        # instead of a connection reset while still writing.
        drain_cap = 8 * self.max_body_bytes
        while size <= drain_cap:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", too_large, True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                too_large = True
            if not too_large:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), too_large, False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as the server would

    return replay


def _ranked(scores: Sequence[float], top_n: int | None) -> list[int]:
    """Indexes by descending score, ties by index (as MxbaiReranker.rank), at most ``top_n``."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order[:top_n] if top_n is not None else order


def create_app(
    reranker_or_model: MxbaiReranker | str | os.PathLike[str] | Callable[[], MxbaiReranker],
    *,
    limits: ServeLimits | None = None,
    batching: BatchOptions | None = None,
    reranker_options: dict[str, Any] | None = None,
    engine: EngineFactory | None = None,
    title: str = "mxbai-rerank",
) -> FastAPI:
    """The rerank server as an ASGI app: Cohere ``/v1/rerank`` ``/v2/rerank``, TEI ``/rerank``, health, metrics.

    Args:
        reranker_or_model: a loaded ``MxbaiReranker`` (ready at once); or a model (artifact
            directory, hub id) or a zero-argument factory, loaded in a thread after startup, so
            ``/health`` answers 503 "loading" until it is ready.
        limits: per-request limits and the queue bound.
        batching: cross-request batching (``BatchOptions(max_batch_requests=1)`` turns it off).
        reranker_options: keyword arguments for ``MxbaiReranker`` when a model is given.
        engine: what runs the model, given the reranker and a per-pass metrics callback (default:
            the local ``CrossRequestBatcher``; the Ray Serve deployment passes its ``@serve.batch``).
        title: the OpenAPI title.

    Returns:
        A FastAPI app; serve it with uvicorn (``run_server``) or any ASGI server.

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
    limits = limits or ServeLimits()
    batching = batching or BatchOptions()
    if reranker_options and isinstance(reranker_or_model, MxbaiReranker):
        raise ValueError("reranker_options: only for a model to load, not a loaded MxbaiReranker")
    metrics = _Metrics()
    state = _State()

    def default_engine(reranker: MxbaiReranker, on_batch: Callable[[BatchStats], None]) -> Engine:
        return CrossRequestBatcher(reranker, batching, max_queue=limits.max_queue, on_batch=on_batch)

    make_engine = engine or default_engine

    async def activate(reranker: MxbaiReranker) -> None:
        eng = make_engine(reranker, metrics.on_batch)
        await eng.start()
        metrics.queue_depth.set_function(lambda: eng.queue_depth)
        state.reranker, state.engine, state.status = reranker, eng, "ok"
        logger.info("serving %s (%s %s) on %s", reranker.model_id, reranker.family, reranker.manifest.dtype,
                    reranker.providers)

    async def load() -> None:
        try:
            if callable(reranker_or_model):
                loader: Callable[[], MxbaiReranker] = reranker_or_model
            else:
                model = reranker_or_model

                def loader() -> MxbaiReranker:
                    return MxbaiReranker(model, **(reranker_options or {}))

            reranker = await asyncio.to_thread(loader)
            if not isinstance(reranker, MxbaiReranker):
                raise TypeError(f"reranker_or_model: the factory returned {type(reranker).__name__}, "
                                "not an MxbaiReranker")
            if state.status == "loading":
                await activate(reranker)
        except Exception as exc:  # reported on /health; the process stays up for the operator to see
            logger.exception("loading the model failed")
            state.status, state.detail = "failed", f"{type(exc).__name__}: {exc}"

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading: asyncio.Task[None] | None = None
        if isinstance(reranker_or_model, MxbaiReranker):
            await activate(reranker_or_model)
        else:
            loading = asyncio.create_task(load())
        try:
            yield
        finally:
            state.status = "stopping"
            if loading is not None and not loading.done():
                await asyncio.wait([loading], timeout=1.0)
            if state.engine is not None:
                await state.engine.close()  # finishes what is queued; uvicorn already let in-flight ones end

    app = FastAPI(title=title, version=__version__, lifespan=lifespan,
                  description="mxbai-rerank on ONNX Runtime: Cohere, Jina and text-embeddings-inference rerank APIs")
    app.state.mxbai = state
    app.state.metrics_registry = metrics.registry

    @app.exception_handler(ServeError)
    async def on_serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return _error_response(exc.status, exc.kind, exc.message, exc.field, metrics)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = "body" if first.get("type") == "json_invalid" else _field_name(first.get("loc", ("body",)))
        message = f"{field}: {str(first.get('msg', 'invalid value')).removeprefix('Value error, ')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return _error_response(422, "validation", message, field, metrics)

    @app.exception_handler(Exception)
    async def on_internal_error(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error")
        return _error_response(500, "internal", f"internal error: {type(exc).__name__}", None, metrics)

    def ready() -> tuple[MxbaiReranker, Engine]:
        if state.status != "ok" or state.reranker is None or state.engine is None:
            why = {"loading": "the model is still loading", "failed": f"the model failed to load ({state.detail})",
                   "stopping": "the server is shutting down"}.get(state.status, "not ready")
            raise ServeError(503, "not_ready", why)
        return state.reranker, state.engine

    async def score(texts: list[str], query: str, *, field: str, instruction: str | None, normalize: bool,
                    raw: bool = False) -> tuple[list[float], int]:
        reranker, eng = ready()
        if len(texts) > limits.max_documents:
            raise ServeError(413, "too_large", f"{field}: {len(texts)} documents, at most {limits.max_documents} "
                             "per request", field)
        for i, text in enumerate(texts):
            if len(text) > limits.max_document_chars:
                raise ServeError(413, "too_large", f"{field}[{i}]: {len(text)} characters, at most "
                                 f"{limits.max_document_chars} per document", f"{field}[{i}]")
        if instruction is not None and reranker.family == "v1":
            raise ServeError(422, "validation", "instruction: only v2 models take an instruction; this is a v1 model",
                             "instruction")
        try:
            rows = await run_in_threadpool(reranker.encode, query, texts, instruction=instruction)
        except (TypeError, ValueError) as exc:
            raise ServeError(422, "validation", str(exc), None) from exc
        job = ScoreJob(rows=rows, normalize=normalize, raw=raw)
        try:
            scores = await eng.submit(job)
        except QueueFullError as exc:
            raise ServeError(503, "queue_full", str(exc)) from exc
        except NotReadyError as exc:
            raise ServeError(503, "not_ready", str(exc)) from exc
        metrics.documents.inc(len(texts))
        metrics.tokens.inc(job.tokens)
        return scores, job.tokens

    async def cohere(body: RerankRequest, version: str) -> RerankResponse:
        try:
            texts = body.texts()
        except ValueError as exc:
            raise ServeError(422, "validation", str(exc), str(exc).split(" ", 1)[0]) from exc
        scores, tokens = await score(texts, body.query, field="documents", instruction=body.instruction,
                                     normalize=body.normalize)
        results = [RerankResult(index=i, relevance_score=scores[i],
                                document=RerankDocument(text=texts[i]) if body.return_documents else None)
                   for i in _ranked(scores, body.top_n)]
        reranker, _ = ready()
        return RerankResponse(id=str(uuid.uuid4()), results=results, meta=RerankMeta(api_version=ApiVersion(
            version=version)), model=reranker.model_id, usage=Usage(total_tokens=tokens))

    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody} for code in (413, 422, 503)}

    @app.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True,
              responses=error_responses, summary="Cohere v1 rerank (also Jina)")
    async def rerank_v1(body: RerankRequest) -> RerankResponse:
        return await cohere(body, "1")

    @app.post("/v2/rerank", response_model=RerankResponse, response_model_exclude_none=True,
              responses=error_responses, summary="Cohere v2 rerank")
    async def rerank_v2(body: RerankRequest) -> RerankResponse:
        return await cohere(body, "2")

    @app.post("/rerank", response_model=list[TeiRank], response_model_exclude_none=True,
              responses=error_responses, summary="text-embeddings-inference rerank")
    async def rerank_tei(body: TeiRerankRequest) -> list[TeiRank]:
        reranker, _ = ready()
        # TEI's scores are sigmoid(logit) unless raw_scores: v1's own score; for v2 the normalized one.
        raw = body.raw_scores and reranker.family == "v1"
        normalize = reranker.family == "v2" and not body.raw_scores
        scores, _ = await score(body.texts, body.query, field="texts", instruction=body.instruction,
                                normalize=normalize, raw=raw)
        return [TeiRank(index=i, score=scores[i], text=body.texts[i] if body.return_text else None)
                for i in _ranked(scores, None)]

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health() -> JSONResponse:
        body = Health(status=state.status, detail=state.detail)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if state.status == "ok" else 503)

    @app.get("/info", response_model=Info, responses={503: {"model": ErrorBody}})
    async def info() -> Info:
        reranker, _ = ready()
        return Info(model_id=reranker.model_id, family=reranker.family, dtype=reranker.manifest.dtype,
                    providers=reranker.providers, max_length=reranker.max_length, path=str(reranker.path),
                    max_documents=limits.max_documents, max_document_chars=limits.max_document_chars,
                    max_body_bytes=limits.max_body_bytes, max_queue=limits.max_queue,
                    cross_request_batching=batching.enabled, max_wait_ms=batching.max_wait_ms,
                    version=__version__)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Guard, max_body_bytes=limits.max_body_bytes, metrics=metrics)
    return app


def run_server(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
               graceful_timeout_s: float | None = 30.0) -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM; in-flight requests finish before it exits."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout_s)

