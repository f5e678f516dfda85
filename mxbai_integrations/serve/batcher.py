"""Cross-request batching: concurrent requests' rows go through the model together, by token budget.

One request of 20 documents leaves a batch half empty and pays the per-run overhead alone; under
load the requests that arrive while the model is busy, or within a few milliseconds of each other,
are scored in one ``Scorer.raw_scores`` pass (sorted by length, padded to a multiple of 8, capped
by the scorer's token budget) and the scores are handed back to each caller. Rows never see each
other inside the graph (position ids come from each row's own mask), so every caller gets the
scores it would get alone, to within float32 padding noise; and a row that scores NaN or inf fails
only the request that owns it, never the others in its pass.

Model work runs in one worker thread, never on the event loop; the loop only gathers and hands back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mxbai_integrations.checks import check_positive_int
from mxbai_integrations.errors import NonFiniteScoreError
from mxbai_integrations.reranker import MxbaiReranker
from mxbai_integrations.scorer import EncodedDocuments, Scorer
from mxbai_integrations.serve.config import BatchOptions

logger = logging.getLogger(__name__)

__all__ = ["BatchStats", "CrossRequestBatcher", "Engine", "JobResult", "NotReadyError", "QueueFullError",
           "ScoreJob", "run_jobs"]


class QueueFullError(Exception):
    """The bounded queue is full: the server answers 503 and the client should retry later."""


class NotReadyError(Exception):
    """The model is still loading, failed to load, or the server is shutting down (503)."""


@dataclass(frozen=True)
class ScoreJob:
    """One request's encoded rows and how its scores are finished.

    Attributes:
        rows: token ids per (query, document) pair, from ``Scorer.encode``/``pairs``.
        normalize: v2: sigmoid(score - shift) instead of the raw logit.
        raw: the score head's output with no activation at all (v1: the logit).
        tokens: the rows' total length (counted once: the batcher sums it on every arrival).
        chunks: for long v1 documents scored in chunks, which document each row belongs to; each
            document's score is then its best chunk's. None: one row per document.
    """

    rows: list[list[int]]
    normalize: bool = False
    raw: bool = False
    chunks: EncodedDocuments | None = None
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", sum(len(r) for r in self.rows))


# A job's outcome: its scores, or the NonFiniteScoreError naming its own rows that scored NaN/inf.
JobResult = list[float] | NonFiniteScoreError


def as_scorer(model: Scorer | MxbaiReranker) -> Scorer:
    """The scorer to run: given, or the one under a loaded ``MxbaiReranker``."""
    return model.scorer if isinstance(model, MxbaiReranker) else model


def run_jobs(model: Scorer | MxbaiReranker, jobs: Sequence[ScoreJob]) -> list[JobResult]:
    """Score the rows of all jobs in one token-budget pass; return each job's outcome in its own order.

    This is the model work of one gathered batch; the local batcher and the Ray Serve deployment
    (``@serve.batch``) both call it, in a worker thread. Finiteness is checked per job: a NaN row
    makes only its own job's outcome a ``NonFiniteScoreError`` (indices of that job's documents).
    """
    scorer = as_scorer(model)
    rows = [row for job in jobs for row in job.rows]
    raw = scorer.raw_scores(rows, check_finite=False)
    out: list[JobResult] = []
    start = 0
    for job in jobs:
        part = raw[start:start + len(job.rows)]
        start += len(job.rows)
        if job.chunks is not None:  # a document scores as its best chunk (NaN if any chunk is)
            part, _ = job.chunks.best(part, job.chunks.documents)
        bad = np.flatnonzero(~np.isfinite(part))
        if bad.size:
            out.append(NonFiniteScoreError(bad.tolist(), dtype=scorer.manifest.dtype, provider=scorer.providers[0]))
            continue
        values = part if job.raw else scorer.activate(part, normalize=job.normalize)
        out.append([float(x) for x in values])
    return out


@dataclass(frozen=True)
class BatchStats:
    """What one model pass did, for the metrics."""

    requests: int
    documents: int
    tokens: int
    seconds: float


class Engine(Protocol):
    """Where the app sends encoded requests: the local batcher, or Ray Serve's ``@serve.batch`` method."""

    @property
    def queue_depth(self) -> int: ...

    async def start(self) -> None: ...

    async def submit(self, job: ScoreJob) -> list[float]: ...

    async def close(self) -> None: ...


@dataclass
class _Pending:
    job: ScoreJob
    future: asyncio.Future[list[float]]
    arrived: float = field(default_factory=time.monotonic)


class CrossRequestBatcher:
    """Gathers concurrent requests and scores them together in a worker thread.

    Args:
        model: the loaded scorer, or an ``MxbaiReranker`` (its scorer is used); only the worker
            thread runs it.
        options: the gathering rule; ``BatchOptions(max_batch_requests=1)`` handles requests one by one.
        max_queue: requests waiting for the model at most; beyond it ``submit`` raises QueueFullError.
        on_batch: called on the event loop after each model pass (metrics).
    """

    def __init__(
        self,
        model: Scorer | MxbaiReranker,
        options: BatchOptions | None = None,
        *,
        max_queue: int = 256,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        check_positive_int("max_queue", max_queue, allow_none=False)
        self.scorer = as_scorer(model)
        self.options = options or BatchOptions()
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0  # running totals of the queue (cancelled entries included until popped)
        self._queued_tokens = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        """Start the gathering loop on the running event loop (the app's lifespan calls this)."""
        if self._task is not None:
            return
        self._closing = False
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mxbai-model")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="mxbai-batcher")

    async def submit(self, job: ScoreJob) -> list[float]:
        """Queue one request and wait for its scores (in its rows' order)."""
        if self._task is None or self._wakeup is None or self._closing:
            raise NotReadyError("the server is shutting down" if self._closing else "the batcher is not running")
        if len(self._queue) >= self.max_queue:
            raise QueueFullError(f"the queue is full ({self.max_queue} requests waiting); retry later")
        if not job.rows:
            return []
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(job, future))
        self._queued_rows += len(job.rows)
        self._queued_tokens += job.tokens
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Refuse new requests, finish every queued one, then stop the worker."""
        self._closing = True
        if self._task is not None and self._wakeup is not None:
            self._wakeup.set()
            await self._task
        self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- the loop ----------------------------------------------------------------------------------
    def _pop(self) -> _Pending:
        item = self._queue.popleft()
        self._queued_rows -= len(item.job.rows)
        self._queued_tokens -= item.job.tokens
        return item

    def _take(self) -> list[_Pending]:
        """Pop the next batch: the first live request, then others while they fit the caps."""
        opts = self.options
        batch: list[_Pending] = []
        docs = tokens = 0
        while self._queue and len(batch) < opts.max_batch_requests:
            item = self._queue[0]
            if item.future.done():  # the client went away while waiting
                self._pop()
                continue
            n, t = len(item.job.rows), item.job.tokens
            if batch and (docs + n > opts.max_batch_documents or tokens + t > opts.max_batch_tokens):
                break
            batch.append(self._pop())
            docs, tokens = docs + n, tokens + t
        return batch

    def _full(self) -> bool:
        """Enough is queued for a full pass (running totals: O(1) per arrival, not O(queue))."""
        opts = self.options
        return (len(self._queue) >= opts.max_batch_requests or self._queued_rows >= opts.max_batch_documents
                or self._queued_tokens >= opts.max_batch_tokens)

    async def _gather_wait(self) -> None:
        """Wait until the batch is full or the first request has waited ``max_wait_ms``."""
        assert self._wakeup is not None
        if not self.options.enabled or self.options.max_wait_ms == 0:
            return
        deadline = self._queue[0].arrived + self.options.max_wait_ms / 1000
        while not self._closing and not self._full():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _loop(self) -> None:
        assert self._wakeup is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                await self._gather_wait()
                batch = self._take()
                if not batch:
                    continue
                jobs = [p.job for p in batch]
                started = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._executor, run_jobs, self.scorer, jobs)
                except Exception as exc:  # a model failure fails this batch's requests, not the worker
                    logger.exception("model pass over %d requests failed", len(batch))
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                for p, outcome in zip(batch, results, strict=True):
                    if p.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        p.future.set_exception(outcome)
                    else:
                        p.future.set_result(outcome)
                if self._on_batch is not None:
                    self._on_batch(BatchStats(requests=len(batch), documents=sum(len(j.rows) for j in jobs),
                                              tokens=sum(j.tokens for j in jobs),
                                              seconds=time.perf_counter() - started))
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the worker die: log and serve the next batch
                logger.exception("batcher loop error")
