"""``evaluate()``: first stage, then each reranker over the same candidates, then ranx on all of them."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mxbai_integrations.errors import ArgumentError, ArgumentTypeError
from mxbai_integrations.eval import first_stage as fs
from mxbai_integrations.eval.data import load_beir, read_trec_run
from mxbai_integrations.eval.metrics import DEFAULT_METRICS, agreement, check_metrics, compare_runs, score_run
from mxbai_integrations.eval.report import Agreement, DatasetSummary, EvalReport, ModelInfo, RunResult
from mxbai_integrations.eval.setup import (
    ModelSpec,
    check_arguments,
    check_models,
    check_names,
    given_fields,
    reranker_options_from,
)
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.reranker import MxbaiReranker

logger = logging.getLogger(__name__)

AGREEMENT_TOP_K = 10
RunMapping = Mapping[str, Mapping[str, float]]


def _significant(p_value: float | None, max_p: float) -> bool:
    return p_value is not None and p_value < max_p


def _first_stage(run: str | os.PathLike[str] | RunMapping | None, corpus: dict[str, str],
                 queries: dict[str, str], depth: int) -> fs.FirstStage:
    if run is None:
        return fs.bm25(corpus, queries, depth)
    if isinstance(run, Mapping):
        given = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}
        return fs.from_run(given, corpus, queries, depth, name="first-stage", source="the given run")
    if not isinstance(run, (str, os.PathLike)):
        raise ArgumentTypeError(f"run must be a TREC run file path, a {{query: {{doc: score}}}} mapping or None, "
                                f"got {type(run).__name__}")
    path = Path(run).expanduser()
    return fs.from_run(read_trec_run(path), corpus, queries, depth, name=path.stem or "run", source=str(path))


@dataclass
class _Scoring:
    """What every reranker is run over: the same queries, corpus and first-stage candidates."""

    queries: dict[str, str]
    corpus: dict[str, str]
    candidates: dict[str, list[str]]
    instruction: str | None
    batch_size: int | None  # per call; None: the reranker's own
    show_progress: bool


def _rerank(reranker: MxbaiReranker, name: str, job: _Scoring) -> RunResult:
    """Score every query's candidates; the clock runs only around the scoring calls."""
    instruction = job.instruction if reranker.family == "v2" else None
    if job.instruction is not None and instruction is None:
        logger.warning("%s is a v1 (DeBERTa) reranker, which takes no instruction; scored without it", name)
    logger.info("reranking %d queries with %s", len(job.queries), reranker)
    run: dict[str, dict[str, float]] = {}
    seconds = 0.0
    scored_queries = pairs = 0
    for query_id in tqdm(job.queries, desc=name, unit="query", disable=not job.show_progress, leave=False):
        docs = job.candidates[query_id]
        if not docs:
            run[query_id] = {}
            continue
        texts = [job.corpus[d] for d in docs]
        started = time.perf_counter()
        scores = reranker.score(job.queries[query_id], texts, instruction=instruction, batch_size=job.batch_size)
        seconds += time.perf_counter() - started
        run[query_id] = dict(zip(docs, scores, strict=True))
        scored_queries += 1
        pairs += len(docs)
    info = ModelInfo(path=str(reranker.path), model_id=reranker.model_id, family=reranker.family,
                     dtype=reranker.manifest.dtype, providers=list(reranker.providers), instruction=instruction)
    return RunResult(name=name, kind="reranker", metrics={}, ci95={}, per_query={}, seconds=seconds,
                     queries=scored_queries, pairs=pairs, model=info, run=run)


def _score_all(results: list[RunResult], qrels: dict[str, dict[str, int]], metrics: list[str], *,
               stat_test: str, max_p: float) -> None:
    """ranx's metrics for every run, then the paired tests between every two runs."""
    for result in results:
        scores = score_run(qrels, result.run, metrics, result.name)
        result.metrics, result.ci95, result.per_query = scores.mean, scores.ci95, scores.per_query
    p_values = compare_runs(qrels, {r.name: r.run for r in results}, metrics, stat_test=stat_test, max_p=max_p)
    for result in results:
        result.p_values = p_values[result.name]
        result.better_than = {
            m: [o.name for o in results if o.name != result.name and _significant(result.p_values[o.name][m], max_p)
                and result.metrics[m] > o.metrics[m]]
            for m in metrics
        }


def _agreements(rerankers: list[RunResult], candidates: dict[str, list[str]]) -> list[Agreement]:
    out = []
    for a, b in combinations(rerankers, 2):
        scores = agreement(a.run, b.run, candidates, k=AGREEMENT_TOP_K)
        out.append(Agreement(a=a.name, b=b.name, spearman=scores.spearman, top10_overlap=scores.top_k_overlap,
                             queries=scores.queries))
    return out


def _check_options_apply(models: Sequence[ModelSpec], given: dict[str, Any]) -> None:
    """reranker_options load models given as paths; with only loaded rerankers they would be ignored."""
    unused = sorted(set(given) - {"batch_size"})
    if unused and all(isinstance(m, MxbaiReranker) for m in models):
        raise ArgumentError(f"reranker_options: {unused} apply to models given as paths, and every model here "
                            "is a loaded MxbaiReranker")


def evaluate(
    models: Sequence[ModelSpec] | ModelSpec,
    data_dir: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | RunMapping | None = None,
    depth: int = 100,
    split: str = "test",
    limit_queries: int | None = None,
    instruction: str | None = None,
    reranker_options: RerankerOptions | Mapping[str, Any] | None = None,
    show_progress: bool = True,
    names: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    stat_test: str = "student",
    max_p: float = 0.05,
    providers: str | Sequence[Any] | None = None,
    max_length: int | None = None,
    allow_fallback: bool | None = None,
    batch_size: int | None = None,
) -> EvalReport:
    """Rerank a first stage's top ``depth`` with each model and score every ranking on the user's qrels.

    Data are read and checked before any model is loaded, so a bad file fails in seconds. Each
    reranker scores the same candidates; ranx computes the metrics and the paired significance
    tests; scipy's Spearman and the top-10 overlap show how far two models (say int8 and fp32)
    order the candidates alike. Models given as paths are loaded one at a time and released.

    Args:
        models: MxbaiReranker instances or artifact directories (hub ids work too, exported on first use).
        data_dir: a BEIR directory: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.
        run: the first stage: a TREC run file (or a {query: {doc: score}} mapping); None builds BM25 (bm25s).
        depth: candidates per query taken from the first stage and reranked.
        split: which qrels file.
        limit_queries: evaluate only the first N evaluable queries (queries.jsonl order).
        instruction: v2 task instruction; v1 models are scored without it (logged).
        reranker_options: how models given as paths are loaded (:class:`RerankerOptions` or a dict of
            its fields: providers, dtype, batch_size, max_length, allow_fallback, ...); its
            ``batch_size``, when set, applies to every model's scoring calls.
        show_progress: a tqdm bar over queries per model.
        names: run names of the models (default: their artifact directory names).
        metrics: ranx metric names.
        stat_test: ranx's paired test: "student" (t-test), "fisher" (randomization) or "tukey".
        max_p: significance level.
        providers: kept for compatibility: the same as ``reranker_options={"providers": ...}``.
        max_length: kept for compatibility: ``reranker_options={"max_length": ...}``.
        allow_fallback: kept for compatibility: ``reranker_options={"allow_fallback": ...}``.
        batch_size: kept for compatibility: ``reranker_options={"batch_size": ...}``.

    Returns:
        An :class:`EvalReport`: runs[0] is the first stage, then one run per model.

    Raises:
        EvalDataError: (an ArgumentError, so a ValueError) a missing or malformed file, named with its line.
        ArgumentError: a bad argument, or an option given both loose and in ``reranker_options`` with
            different values.

    Examples:
        >>> from mxbai_integrations.eval import evaluate
        >>> report = evaluate(["./base-v2-fp32", "./base-v2-int8"], "./scifact", depth=50,  # doctest: +SKIP
        ...                   reranker_options={"providers": ["cpu"], "batch_size": 16})
        >>> print(report.format_table())  # doctest: +SKIP
        data          ./scifact (split test): 300 queries, 5183 documents
        first stage   bm25 (bm25s), top 50 reranked per query
        ...
    """
    models = check_models(models)
    check_arguments(depth=depth, limit_queries=limit_queries, instruction=instruction, stat_test=stat_test,
                    max_p=max_p)
    options = reranker_options_from(reranker_options, providers=providers, max_length=max_length,
                                    allow_fallback=allow_fallback, batch_size=batch_size)
    given = {**given_fields(reranker_options), **({"batch_size": batch_size} if batch_size is not None else {})}
    _check_options_apply(models, given)

    data = load_beir(data_dir, split)
    queries = data.queries if limit_queries is None else dict(list(data.queries.items())[:limit_queries])
    qrels = {q: data.qrels[q] for q in queries}
    first = _first_stage(run, data.corpus, queries, depth)
    model_names = check_names(models, names, first.name)
    metrics = check_metrics(metrics)
    job = _Scoring(queries=queries, corpus=data.corpus, candidates={q: list(first.run[q]) for q in queries},
                   instruction=instruction, batch_size=options.batch_size if "batch_size" in given else None,
                   show_progress=show_progress)

    results = [RunResult(
        name=first.name, kind="first_stage", metrics={}, ci95={}, per_query={}, seconds=first.seconds,
        queries=sum(1 for docs in first.run.values() if docs), pairs=sum(len(d) for d in first.run.values()),
        run=first.run)]
    for model, name in zip(models, model_names, strict=True):
        reranker = model if isinstance(model, MxbaiReranker) else MxbaiReranker(model, options=options)
        results.append(_rerank(reranker, name, job))
        del reranker
    _score_all(results, qrels, metrics, stat_test=stat_test, max_p=float(max_p))

    summary = DatasetSummary(
        data_dir=str(data.data_dir), split=split,
        first_stage=f"{first.name} ({first.source})" if first.source != first.name else first.name,
        depth=depth, corpus_documents=len(data.corpus), queries=len(queries),
        queries_without_qrels=data.queries_without_qrels, qrels_unknown_documents=data.qrels_unknown_documents,
        qrels_unknown_queries=data.qrels_unknown_queries, run_unknown_documents=first.unknown_documents,
        queries_without_candidates=first.queries_without_candidates, limit_queries=limit_queries,
    )
    return EvalReport(data=summary, metrics=metrics, stat_test=stat_test, max_p=float(max_p),
                      query_ids=list(queries), runs=results, agreement=_agreements(results[1:], job.candidates))
