"""Reranking quality on the user's own data: ``evaluate()`` under ``mxbai-onnx eval`` (extra ``eval``).

    from mxbai_integrations.eval import evaluate
    report = evaluate(["./base-v2-fp32", "./base-v2-int8"], "./my-beir-data", depth=100)
    print(report.format_table())

A BEIR directory (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and a first stage (BM25 built by
bm25s, or a TREC run file) go in; NDCG@10, MRR@10, Recall@100 and MAP for the first stage and each
reranker, paired significance tests (ranx), latency and agreement between models come out. The
metrics are ranx's, never hand-written. Needs ``pip install "mxbai-integrations[eval]"``.
"""

from __future__ import annotations

from mxbai_integrations.eval.data import BeirData, EvalDataError, load_beir, read_qrels, read_trec_run
from mxbai_integrations.eval.metrics import DEFAULT_METRICS
from mxbai_integrations.eval.report import Agreement, DatasetSummary, EvalReport, ModelInfo, RunResult
from mxbai_integrations.eval.runner import evaluate

__all__ = [
    "DEFAULT_METRICS",
    "Agreement",
    "BeirData",
    "DatasetSummary",
    "EvalDataError",
    "EvalReport",
    "ModelInfo",
    "RunResult",
    "evaluate",
    "load_beir",
    "read_qrels",
    "read_trec_run",
]
