"""Ray Data: offline re-scoring of (query, document) rows with ``map_batches`` over a class UDF.

One ``MxbaiReranker`` per actor (loaded once, reused for every block it is given); each batch's
pairs, whatever their queries, are encoded per query (each query tokenized once) and run through
its scorer together by token budget, and the scores come back as a new column in the rows' own
order. A NaN or inf score raises ``NonFiniteScoreError`` rather than writing a wrong column.

    import ray
    from mxbai_integrations.serve.ray_data import rerank_dataset

    ds = ray.data.read_parquet("candidates.parquet")          # columns: qid, query, doc_id, document
    scored = rerank_dataset(ds, "./mxbai-rerank-base-v2-onnx", concurrency=4, num_gpus=1)
    scored.write_parquet("scored/")

Needs the ``ray`` extra (``ray[data]``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

try:
    import ray.data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'mxbai_integrations.serve.ray_data needs Ray Data: pip install "mxbai-integrations[ray]"'
    ) from exc

from mxbai_integrations.errors import ArgumentError
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.reranker import MxbaiReranker

__all__ = ["RerankBatchUDF", "rerank_dataset"]


class RerankBatchUDF:
    """A ``map_batches`` callable class: adds ``score_column`` to each numpy batch.

    Args:
        model: artifact directory (visible on every node) or hub id.
        query_column: the column holding each row's query.
        document_column: the column holding each row's document text.
        score_column: the new column (float64), same scale as ``MxbaiReranker.score``.
        normalize: v2: sigmoid(score - shift) instead of the raw logit.
        instruction: v2: a task instruction for every row.
        reranker_options: a ``RerankerOptions`` (or a dict of its fields).
    """

    def __init__(self, model: str | os.PathLike[str], *, query_column: str = "query",
                 document_column: str = "document", score_column: str = "score", normalize: bool = False,
                 instruction: str | None = None,
                 reranker_options: RerankerOptions | Mapping[str, Any] | None = None) -> None:
        options = RerankerOptions.coerce(reranker_options, where="reranker_options")
        self.reranker = MxbaiReranker(model, options=options)
        self.query_column, self.document_column, self.score_column = query_column, document_column, score_column
        self.normalize, self.instruction = normalize, instruction

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for column in (self.query_column, self.document_column):
            if column not in batch:
                raise ArgumentError(f"{column}: no such column in the dataset (columns: {sorted(batch)})")
        scorer = self.reranker.scorer
        queries, documents = batch[self.query_column], batch[self.document_column]
        by_query: dict[str, list[int]] = defaultdict(list)
        for i, query in enumerate(queries):
            by_query[str(query)].append(i)
        rows: list[list[int]] = [[] for _ in range(len(queries))]
        for query, indexes in by_query.items():
            encoded = scorer.encode(query, [str(documents[i]) for i in indexes], instruction=self.instruction)
            for i, ids in zip(indexes, encoded, strict=True):
                rows[i] = ids
        scores = scorer.activate(scorer.raw_scores(rows), normalize=self.normalize)
        return {**batch, self.score_column: np.asarray(scores, dtype=np.float64)}


def rerank_dataset(
    dataset: ray.data.Dataset,
    model: str | os.PathLike[str],
    *,
    query_column: str = "query",
    document_column: str = "document",
    score_column: str = "score",
    normalize: bool = False,
    instruction: str | None = None,
    batch_size: int = 256,
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    reranker_options: RerankerOptions | Mapping[str, Any] | None = None,
) -> ray.data.Dataset:
    """Score every (query, document) row of ``dataset``; the scores land in ``score_column``.

    Args:
        dataset: rows with at least ``query_column`` and ``document_column`` (other columns, such as
            ids, pass through unchanged).
        model: artifact directory visible on every node, or hub id.
        batch_size: rows per UDF call (the model batches them again by token budget).
        concurrency: reranker actors (an int, or (min, max) for an autoscaling pool).
        num_gpus / num_cpus: per actor; with ``num_gpus`` the reranker's "auto" providers pick CUDA.
        reranker_options: a ``RerankerOptions`` (or a dict of its fields: providers, dtype, batch_size, ...),
            checked here, before any actor starts.

    Returns:
        A lazy dataset; nothing runs until it is consumed (``take_all``, ``write_parquet``, ...).

    Examples:
        >>> import ray
        >>> ds = ray.data.from_items([{"query": "capital of France?", "document": "Paris."}])
        >>> rerank_dataset(ds, "./mxbai-rerank-xsmall-v1-onnx").take_all()  # doctest: +SKIP
        [{'query': 'capital of France?', 'document': 'Paris.', 'score': 0.93}]
    """
    options = RerankerOptions.coerce(reranker_options, where="reranker_options")
    remote_args: dict[str, Any] = {}
    if num_gpus is not None:
        remote_args["num_gpus"] = num_gpus
    if num_cpus is not None:
        remote_args["num_cpus"] = num_cpus
    return dataset.map_batches(
        RerankBatchUDF,
        fn_constructor_args=(str(model),),
        fn_constructor_kwargs={"query_column": query_column, "document_column": document_column,
                               "score_column": score_column, "normalize": normalize, "instruction": instruction,
                               "reranker_options": options},
        batch_size=batch_size, batch_format="numpy", concurrency=concurrency, **remote_args,
    )
