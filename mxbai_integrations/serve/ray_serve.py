"""Ray Serve: the same HTTP app on a Ray cluster, one ``MxbaiReranker`` per replica, ``@serve.batch`` batching.

The deployment wraps ``MxbaiReranker`` unchanged and uses ``create_app()`` as its ingress, so the
endpoints, limits and errors are those of ``mxbai-onnx serve``; only the engine differs: Ray's
``@serve.batch`` gathers concurrent requests on a replica (instead of the local batcher) and runs
them through the reranker's scorer in one pass (``run_jobs``: a NaN row fails only its own
request). Ray routes between replicas, scales them (``autoscaling_config``) and places them on GPUs
(``ray_actor_options``). Connection timeouts are Ray's HTTP proxy's, not ``run_server``'s.

    from ray import serve
    from mxbai_integrations.serve.ray_serve import build_app

    serve.run(build_app("./mxbai-rerank-base-v2-onnx", ray_actor_options={"num_gpus": 1},
                        autoscaling_config={"min_replicas": 1, "max_replicas": 4}))

or from the shell: ``serve run mxbai_integrations.serve.ray_serve:app_builder model=./mxbai-rerank-base-v2-onnx``.

Needs the ``ray`` extra (``ray[serve]``) and the ``serve`` extra.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

try:
    from ray import serve
    from ray.serve import Application
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'mxbai_integrations.serve.ray_serve needs Ray Serve: pip install "mxbai-integrations[ray,serve]"'
    ) from exc

from mxbai_integrations.errors import ArgumentError
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.reranker import MxbaiReranker
from mxbai_integrations.serve.app import create_app
from mxbai_integrations.serve.batcher import BatchStats, JobResult, ScoreJob, run_jobs
from mxbai_integrations.serve.config import BatchOptions, ServeLimits

__all__ = ["RerankDeployment", "app_builder", "build_app", "run_ray_server"]

DEFAULT_BATCH = BatchOptions()


def _exit_on_signal(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


class _RayBatchEngine:
    """The app's engine inside a replica: every request goes through the deployment's ``@serve.batch``."""

    def __init__(self, deployment: RerankDeployment) -> None:
        self._deployment = deployment

    @property
    def queue_depth(self) -> int:
        return 0  # Ray queues requests itself; see Ray Serve's own metrics

    async def start(self) -> None:
        return None

    async def submit(self, job: ScoreJob) -> list[float]:
        if not job.rows:
            return []
        outcome: JobResult = await self._deployment.score_batch(job)
        if isinstance(outcome, BaseException):  # this request's own non-finite rows; the others got scores
            raise outcome
        return outcome

    async def close(self) -> None:
        return None


@serve.deployment(name="MxbaiRerank", max_ongoing_requests=64)
@serve.ingress()
class RerankDeployment:
    """One replica: a reranker, Ray's dynamic batching over it, and ``create_app()`` as the HTTP ingress.

    Args:
        model: artifact directory (visible on every node) or hub id.
        reranker_options: a ``RerankerOptions`` (or a dict of its fields: providers, dtype, batch_size, ...).
        limits: per-request limits; ``max_queue`` is Ray's business here (``max_queued_requests``).
        batching: ``max_batch_requests`` and ``max_wait_ms`` configure ``@serve.batch``.
    """

    def __init__(self, model: str | os.PathLike[str], *,
                 reranker_options: RerankerOptions | Mapping[str, Any] | None = None,
                 limits: ServeLimits | None = None, batching: BatchOptions | None = None) -> None:
        options = RerankerOptions.coerce(reranker_options, where="reranker_options")
        self.reranker = MxbaiReranker(model, options=options)
        self.limits = limits or ServeLimits()
        self.batching = batching or DEFAULT_BATCH
        self.score_batch.set_max_batch_size(self.batching.max_batch_requests)
        self.score_batch.set_batch_wait_timeout_s(self.batching.max_wait_ms / 1000)
        self._on_batch: Callable[[BatchStats], None] | None = None

    @serve.batch(max_batch_size=DEFAULT_BATCH.max_batch_requests, batch_wait_timeout_s=DEFAULT_BATCH.max_wait_ms / 1000)
    async def score_batch(self, jobs: list[ScoreJob]) -> list[JobResult]:
        """Ray gathers concurrent ``submit`` calls into ``jobs``; the model runs in a thread, off the loop.

        Each job's outcome is its scores or its own NonFiniteScoreError (returned, not raised, so
        that Ray hands every other job its scores).
        """
        started = time.perf_counter()
        results = await asyncio.to_thread(run_jobs, self.reranker.scorer, jobs)
        if self._on_batch is not None:
            self._on_batch(BatchStats(requests=len(jobs), documents=sum(len(j.rows) for j in jobs),
                                      tokens=sum(j.tokens for j in jobs), seconds=time.perf_counter() - started))
        return results

    def __serve_build_asgi_app__(self) -> Any:
        def engine(_: MxbaiReranker, on_batch: Callable[[BatchStats], None]) -> _RayBatchEngine:
            self._on_batch = on_batch
            return _RayBatchEngine(self)

        return create_app(self.reranker, limits=self.limits, batching=self.batching, engine=engine)


def build_app(
    model: str | os.PathLike[str],
    *,
    reranker_options: RerankerOptions | Mapping[str, Any] | None = None,
    limits: ServeLimits | None = None,
    batching: BatchOptions | None = None,
    num_replicas: int | str | None = None,
    autoscaling_config: dict[str, Any] | None = None,
    ray_actor_options: dict[str, Any] | None = None,
    max_ongoing_requests: int | None = None,
    max_queued_requests: int | None = None,
    name: str | None = None,
) -> Application:
    """The deployment, configured and bound, ready for ``serve.run``.

    Deployment options (``num_replicas``, ``autoscaling_config``, ``ray_actor_options`` such as
    ``{"num_gpus": 1}``, ``max_ongoing_requests``, ``max_queued_requests``) are passed to Ray as
    given; None keeps Ray's (or this deployment's) default. ``reranker_options`` (a
    ``RerankerOptions`` or a dict of its fields) is checked here, before anything is deployed.

    Examples:
        >>> from ray import serve
        >>> serve.run(build_app("./mxbai-rerank-xsmall-v1-onnx", num_replicas=2))  # doctest: +SKIP
    """
    options = {key: value for key, value in {
        "num_replicas": num_replicas, "autoscaling_config": autoscaling_config,
        "ray_actor_options": ray_actor_options, "max_ongoing_requests": max_ongoing_requests,
        "max_queued_requests": max_queued_requests, "name": name,
    }.items() if value is not None}
    reranker = RerankerOptions.coerce(reranker_options, where="reranker_options")
    return RerankDeployment.options(**options).bind(
        str(model), reranker_options=reranker, limits=limits, batching=batching)


def app_builder(args: dict[str, str]) -> Application:
    """For ``serve run mxbai_integrations.serve.ray_serve:app_builder model=PATH [num_replicas=N] [num_gpus=G]``."""
    if "model" not in args:
        raise ArgumentError("model: give the artifact directory as model=PATH")
    num_gpus = float(args.get("num_gpus", 0))
    return build_app(args["model"], num_replicas=int(args["num_replicas"]) if "num_replicas" in args else None,
                     ray_actor_options={"num_gpus": num_gpus} if num_gpus else None)


def run_ray_server(app: Application, *, host: str = "127.0.0.1", port: int = 8000, address: str | None = None) -> None:
    """Start Ray (or join ``address``), serve ``app`` over HTTP on host:port, and block until interrupted.

    SIGTERM (as well as Ctrl-C) ends it through ``serve.shutdown()``, which lets replicas finish the
    requests they hold (``graceful_shutdown_timeout_s``) before Ray stops.
    """
    import ray

    ray.init(address=address, include_dashboard=False, ignore_reinit_error=True)
    if threading.current_thread() is threading.main_thread():  # after ray.init, which installs its own
        signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(app, blocking=True, route_prefix="/")
    finally:
        serve.shutdown()
        ray.shutdown()
