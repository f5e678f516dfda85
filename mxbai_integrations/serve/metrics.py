"""Prometheus metrics of one app, in the app's own registry (two apps in one process do not collide).

Every answer of the rerank endpoints is counted by status, every error answer by ``error_type``
(all kinds exported at 0 from the start, so rates work), and every model pass by its size.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mxbai_integrations.serve.batcher import BatchStats
from mxbai_integrations.serve.errors import ERROR_KINDS

__all__ = ["ServeMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServeMetrics:
    """The counters and histograms ``/metrics`` exports (names prefixed ``mxbai_rerank_``)."""

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
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)

    def on_batch(self, stats: BatchStats) -> None:
        """Record one model pass (the engine calls this on the event loop)."""
        self.batch_requests.observe(stats.requests)
        self.batch_documents.observe(stats.documents)
        self.batch_seconds.observe(stats.seconds)

    def on_error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()
