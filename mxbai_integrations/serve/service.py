"""The endpoints' logic, apart from HTTP: ``RerankService`` (the shape of vLLM's ``ServingScores``).

The service owns the model's life (loading in a thread, the engine that batches, shutdown) and
turns a validated request into a response: limits that need the model (an instruction to a v1
model), tokenizing in a thread pool, scoring through the engine, ranking with
:func:`~mxbai_integrations.ranking.rank_order`. Failures are classified by type
(:func:`~mxbai_integrations.serve.errors.classify`); the app only routes, parses and answers.

Examples:
    >>> service = RerankService(MxbaiReranker("./mxbai-rerank-xsmall-v1-onnx"))  # doctest: +SKIP
    >>> await service.start()  # doctest: +SKIP
    >>> await service.rerank_tei(TeiRerankRequest(query="capital of France?", texts=["Paris.", "Berlin."]))
    [TeiRank(index=0, score=0.93, text=None), TeiRank(index=1, score=0.12, text=None)]  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool

from mxbai_integrations import __version__
from mxbai_integrations.checks import check_documents
from mxbai_integrations.errors import ArgumentTypeError, MxbaiError
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.ranking import rank_order
from mxbai_integrations.reranker import MxbaiReranker
from mxbai_integrations.serve.batcher import (
    BatchStats,
    CrossRequestBatcher,
    Engine,
    NotReadyError,
    QueueFullError,
    ScoreJob,
)
from mxbai_integrations.serve.config import BatchOptions, ServeLimits
from mxbai_integrations.serve.errors import ServeError, classify, not_ready
from mxbai_integrations.serve.metrics import ServeMetrics
from mxbai_integrations.serve.schemas import (
    ApiVersion,
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

__all__ = ["EngineFactory", "ModelSource", "RerankService"]

logger = logging.getLogger(__name__)

EngineFactory = Callable[[MxbaiReranker, Callable[[BatchStats], None]], Engine]
ModelSource = MxbaiReranker | str | os.PathLike[str] | Callable[[], MxbaiReranker]
Status = Literal["ok", "loading", "failed", "stopping"]


class RerankService:
    """One model behind the rerank endpoints: its life, its limits, and each endpoint's answer.

    Args:
        source: a loaded ``MxbaiReranker`` (ready at once); or a model (artifact directory, hub id)
            or a zero-argument factory, loaded in a thread by ``start``.
        limits: per-request limits and the queue bound.
        batching: cross-request batching (``BatchOptions(max_batch_requests=1)`` turns it off).
        reranker_options: a ``RerankerOptions`` (or a dict of its fields) for a model to load.
        engine: what runs the model, given the reranker and a per-pass metrics callback (default:
            the local ``CrossRequestBatcher``; the Ray Serve deployment passes its ``@serve.batch``).
        metrics: where documents, tokens and model passes are counted.
    """

    def __init__(
        self,
        source: ModelSource,
        *,
        limits: ServeLimits | None = None,
        batching: BatchOptions | None = None,
        reranker_options: RerankerOptions | Mapping[str, Any] | None = None,
        engine: EngineFactory | None = None,
        metrics: ServeMetrics | None = None,
    ) -> None:
        if reranker_options is not None and isinstance(source, MxbaiReranker):
            raise ArgumentTypeError("reranker_options: only for a model to load, not a loaded MxbaiReranker")
        self.options = RerankerOptions.coerce(reranker_options, where="reranker_options")
        self.source = source
        self.limits = limits or ServeLimits()
        self.batching = batching or BatchOptions()
        self.metrics = metrics or ServeMetrics()
        self._make_engine = engine or self._default_engine
        self.status: Status = "loading"
        self.detail: str | None = None
        self.reranker: MxbaiReranker | None = None
        self.engine: Engine | None = None
        self._loading: asyncio.Task[None] | None = None

    # -- life ----------------------------------------------------------------------------------------
    def _default_engine(self, reranker: MxbaiReranker, on_batch: Callable[[BatchStats], None]) -> Engine:
        return CrossRequestBatcher(reranker.scorer, self.batching, max_queue=self.limits.max_queue, on_batch=on_batch)

    async def start(self) -> None:
        """Activate a loaded reranker now, or start loading the model in a thread (``/health``: loading)."""
        if isinstance(self.source, MxbaiReranker):
            await self._activate(self.source)
        else:
            self._loading = asyncio.create_task(self._load())

    async def stop(self) -> None:
        """Refuse new requests (503), let the engine finish what it holds, and stop it."""
        self.status = "stopping"
        if self._loading is not None and not self._loading.done():
            await asyncio.wait([self._loading], timeout=1.0)
        if self.engine is not None:
            await self.engine.close()

    async def _activate(self, reranker: MxbaiReranker) -> None:
        engine = self._make_engine(reranker, self.metrics.on_batch)
        await engine.start()
        self.metrics.queue_depth.set_function(lambda: engine.queue_depth)
        self.reranker, self.engine, self.status = reranker, engine, "ok"
        logger.info("serving %s (%s %s) on %s", reranker.model_id, reranker.family, reranker.manifest.dtype,
                    reranker.providers)

    def _loader(self) -> Callable[[], MxbaiReranker]:
        source = self.source
        if callable(source) and not isinstance(source, MxbaiReranker):
            return source
        return lambda: MxbaiReranker(source, options=self.options)  # type: ignore[arg-type]

    async def _load(self) -> None:
        try:
            reranker = await asyncio.to_thread(self._loader())
            if not isinstance(reranker, MxbaiReranker):
                raise ArgumentTypeError(f"reranker_or_model: the factory returned {type(reranker).__name__}, "
                                        "not an MxbaiReranker")
            if self.status == "loading":
                await self._activate(reranker)
        except Exception as exc:  # reported on /health; the process stays up for the operator to see
            logger.exception("loading the model failed")
            self.status, self.detail = "failed", f"{type(exc).__name__}: {exc}"

    def ready(self) -> tuple[MxbaiReranker, Engine]:
        """The reranker and engine, or a 503 (with Retry-After) saying why there are none."""
        if self.status != "ok" or self.reranker is None or self.engine is None:
            why = {"loading": "the model is still loading", "failed": f"the model failed to load ({self.detail})",
                   "stopping": "the server is shutting down"}.get(self.status, "not ready")
            raise not_ready(why)
        return self.reranker, self.engine

    # -- endpoints -----------------------------------------------------------------------------------
    def health(self) -> tuple[Health, int]:
        return Health(status=self.status, detail=self.detail), 200 if self.status == "ok" else 503

    def info(self) -> Info:
        reranker, _ = self.ready()
        limits = self.limits
        return Info(model_id=reranker.model_id, family=reranker.family, dtype=reranker.manifest.dtype,
                    providers=reranker.providers, max_length=reranker.max_length, path=str(reranker.path),
                    max_documents=limits.max_documents, max_document_chars=limits.max_document_chars,
                    max_query_chars=limits.max_query_chars, max_body_bytes=limits.max_body_bytes,
                    max_queue=limits.max_queue, cross_request_batching=self.batching.enabled,
                    max_wait_ms=self.batching.max_wait_ms, version=__version__)

    async def rerank_cohere(self, body: RerankRequest, version: str) -> RerankResponse:
        """Cohere ``/v1/rerank`` and ``/v2/rerank``: ranked ``{index, relevance_score, document?}``."""
        reranker, _ = self.ready()
        texts = body.texts(self.limits.max_document_chars)
        if body.max_chunks_per_doc is not None and reranker.family != "v1":
            raise ServeError(422, "validation", "max_chunks_per_doc: only v1 models score documents in chunks; "
                             "v2 models read documents up to max_length tokens", "max_chunks_per_doc")
        scores, tokens = await self.score(body.query, texts, field="documents", instruction=body.instruction,
                                          normalize=body.normalize, max_chunks=body.max_chunks_per_doc)
        results = [RerankResult(index=i, relevance_score=scores[i],
                                document=RerankDocument(text=texts[i]) if body.return_documents else None)
                   for i in rank_order(scores, body.top_n)]
        return RerankResponse(id=str(uuid.uuid4()), results=results, meta=RerankMeta(api_version=ApiVersion(
            version=version)), model=reranker.model_id, usage=Usage(total_tokens=tokens))

    async def rerank_tei(self, body: TeiRerankRequest) -> list[TeiRank]:
        """text-embeddings-inference ``/rerank``: sigmoid scores (v1's own; v2 normalized) unless ``raw_scores``."""
        reranker, _ = self.ready()
        raw = body.raw_scores and reranker.family == "v1"
        normalize = reranker.family == "v2" and not body.raw_scores
        scores, _ = await self.score(body.query, body.texts, field="texts", instruction=body.instruction,
                                     normalize=normalize, raw=raw)
        return [TeiRank(index=i, score=scores[i], text=body.texts[i] if body.return_text else None)
                for i in rank_order(scores)]

    @staticmethod
    def _encode(reranker: MxbaiReranker, query: str, texts: list[str], instruction: str | None,
                max_chunks: int | None) -> ScoreJob:
        scorer = reranker.scorer
        prepared = scorer.query(query, instruction=instruction)
        chunked = max_chunks is not None or scorer.options.long_documents == "max_chunk"
        if not chunked:
            return ScoreJob(rows=scorer.pairs(prepared, check_documents(texts)))
        encoded = scorer.encode_documents(prepared, check_documents(texts), long_documents="max_chunk",
                                          max_chunks=max_chunks)
        return ScoreJob(rows=encoded.rows, chunks=encoded)

    async def score(self, query: str, texts: list[str], *, field: str, instruction: str | None, normalize: bool,
                    raw: bool = False, max_chunks: int | None = None) -> tuple[list[float], int]:
        """Scores of ``texts`` in their order, and the tokens scored; errors classified (422/500/503).

        Tokenizing runs in the thread pool (the query once, each text once), the model in the
        engine; the event loop only waits. A long v1 document is scored in chunks (its best chunk's
        score) when the reranker's ``long_documents`` is "max_chunk" or ``max_chunks`` is given.
        """
        reranker, engine = self.ready()
        try:
            job = await run_in_threadpool(self._encode, reranker, query, texts, instruction, max_chunks)
            job = ScoreJob(rows=job.rows, normalize=normalize, raw=raw, chunks=job.chunks)
            scores = await engine.submit(job)
        except QueueFullError as exc:
            raise ServeError(503, "queue_full", str(exc)) from exc
        except NotReadyError as exc:
            raise not_ready(str(exc)) from exc
        except MxbaiError as exc:
            error = classify(exc, documents_field=field)
            if error.kind == "internal":  # deliberate, but not about this request: our failure
                logger.error("scoring failed: %s", exc, exc_info=exc)
            raise error from exc
        self.metrics.documents.inc(len(texts))
        self.metrics.tokens.inc(job.tokens)
        return scores, job.tokens
