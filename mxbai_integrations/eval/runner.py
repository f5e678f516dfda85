"""``evaluate()``: first stage, then each reranker over the same candidates, then ranx on all of them."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any, TypeAlias

from tqdm import tqdm

from mxbai_integrations.eval import first_stage as fs
from mxbai_integrations.eval.data import load_beir, read_trec_run
from mxbai_integrations.eval.metrics import (
    DEFAULT_METRICS,
    STAT_TESTS,
    agreement,
    check_metrics,
    compare_runs,
    score_run,
)
from mxbai_integrations.eval.report import Agreement, DatasetSummary, EvalReport, ModelInfo, RunResult
from mxbai_integrations.reranker import MxbaiReranker
from mxbai_integrations.resolve import _looks_like_path

logger = logging.getLogger(__name__)

ModelSpec: TypeAlias = "MxbaiReranker | str | os.PathLike[str]"
AGREEMENT_TOP_K = 10


def _check_positive(name: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")


def _significant(p_value: float | None, max_p: float) -> bool:
    return p_value is not None and p_value < max_p


def _model_names(models: Sequence[ModelSpec], names: Sequence[str] | None, taken: str) -> list[str]:
    """Artifact directory names, made unique (the first stage's name is taken)."""
    if names is not None:
        if isinstance(names, str) or len(names) != len(models):
            raise ValueError(f"names must be a list of {len(models)} names, one per model, got {names!r}")
        if any(not isinstance(n, str) or not n.strip() for n in names):
            raise ValueError(f"names must be non-empty strings, got {names!r}")
        if len(set(names)) != len(names) or taken in names:
            raise ValueError(f"names must be unique and differ from the first stage's {taken!r}, got {names!r}")
        return list(names)
    out: list[str] = []
    for model in models:
        # abspath, not resolve(): a symlink keeps the name the user typed.
        path = model.path if isinstance(model, MxbaiReranker) else Path(os.path.abspath(Path(model).expanduser()))
        base = path.name
        name, n = base or "model", 2
        while name in out or name == taken:
            name, n = f"{base}-{n}", n + 1
        out.append(name)
    return out


def _first_stage(run: str | os.PathLike[str] | Mapping[str, Mapping[str, float]] | None, corpus: dict[str, str],
                 queries: dict[str, str], depth: int) -> fs.FirstStage:
    if run is None:
        return fs.bm25(corpus, queries, depth)
    if isinstance(run, Mapping):
        given = {str(q): {str(d): float(s) for d, s in docs.items()} for q, docs in run.items()}
        return fs.from_run(given, corpus, queries, depth, name="first-stage", source="the given run")
    if not isinstance(run, (str, os.PathLike)):
        raise TypeError(f"run must be a TREC run file path, a {{query: {{doc: score}}}} mapping or None, "
                        f"got {type(run).__name__}")
    path = Path(run).expanduser()
    return fs.from_run(read_trec_run(path), corpus, queries, depth, name=path.stem or "run", source=str(path))


def _rerank(reranker: MxbaiReranker, name: str, queries: dict[str, str], corpus: dict[str, str],
            candidates: dict[str, list[str]], *, instruction: str | None, batch_size: int | None,
            show_progress: bool) -> tuple[dict[str, dict[str, float]], float, int, int]:
    """Score every query's candidates; the clock runs only around the scoring calls."""
    run: dict[str, dict[str, float]] = {}
    seconds = 0.0
    scored_queries = pairs = 0
    for query_id in tqdm(queries, desc=name, unit="query", disable=not show_progress, leave=False):
        docs = candidates[query_id]
        if not docs:
            run[query_id] = {}
            continue
        texts = [corpus[d] for d in docs]
        started = time.perf_counter()
        scores = reranker.score(queries[query_id], texts, instruction=instruction, batch_size=batch_size)
        seconds += time.perf_counter() - started
        run[query_id] = dict(zip(docs, scores, strict=True))
        scored_queries += 1
        pairs += len(docs)
    return run, seconds, scored_queries, pairs


def evaluate(
    models: Sequence[ModelSpec],
    data_dir: str | os.PathLike[str],
    *,
    run: str | os.PathLike[str] | Mapping[str, Mapping[str, float]] | None = None,
    depth: int = 100,
    split: str = "test",
    limit_queries: int | None = None,
    instruction: str | None = None,
    batch_size: int | None = None,
    providers: str | Sequence[Any] = "auto",
    show_progress: bool = True,
    names: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    stat_test: str = "student",
    max_p: float = 0.05,
    max_length: int | None = None,
    allow_fallback: bool = False,
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
        batch_size: pairs per batch (default: the reranker's).
        providers: for models given as paths, as in :class:`MxbaiReranker`.
        show_progress: a tqdm bar over queries per model.
        names: run names of the models (default: their artifact directory names).
        metrics: ranx metric names.
        stat_test: ranx's paired test: "student" (t-test), "fisher" (randomization) or "tukey".
        max_p: significance level.
        max_length: token budget per pair for models given as paths.
        allow_fallback: for models given as paths, as in :class:`MxbaiReranker`.

    Returns:
        An :class:`EvalReport`: runs[0] is the first stage, then one run per model.

    Raises:
        EvalDataError: (a ValueError) a missing or malformed file, named with its line number.

    Examples:
        >>> from mxbai_integrations.eval import evaluate
        >>> report = evaluate(["./base-v2-fp32", "./base-v2-int8"], "./scifact", depth=50)  # doctest: +SKIP
        >>> print(report.format_table())  # doctest: +SKIP
        data          ./scifact (split test): 300 queries, 5183 documents
        first stage   bm25 (bm25s), top 50 reranked per query
        ...
    """
    if isinstance(models, (str, os.PathLike, MxbaiReranker)) or not isinstance(models, Sequence):
        models = [models]  # type: ignore[list-item]
    if not models:
        raise ValueError("models: give at least one reranker (an artifact directory or an MxbaiReranker)")
    for i, model in enumerate(models):
        if not isinstance(model, (MxbaiReranker, str, os.PathLike)):
            raise TypeError(f"models[{i}] must be an MxbaiReranker or an artifact path, got {type(model).__name__}")
        # A mistyped path fails now, not after BM25 and ranx's warm-up; hub ids are left to the reranker.
        if not isinstance(model, MxbaiReranker):
            text = os.fspath(model)
            if not Path(text).expanduser().is_dir() and (isinstance(model, os.PathLike) or _looks_like_path(text)):
                raise FileNotFoundError(f"model: {text!r} does not exist (expected an artifact directory or a hub id)")
    _check_positive("depth", depth, allow_none=False)
    _check_positive("limit_queries", limit_queries, allow_none=True)
    _check_positive("batch_size", batch_size, allow_none=True)
    if instruction is not None and not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str or None, got {type(instruction).__name__}")
    if stat_test not in STAT_TESTS:
        raise ValueError(f"stat_test must be one of {STAT_TESTS}, got {stat_test!r}")
    if isinstance(max_p, bool) or not isinstance(max_p, (int, float)) or not 0 < max_p < 1:
        raise ValueError(f"max_p must be a number between 0 and 1, got {max_p!r}")

    data = load_beir(data_dir, split)
    queries = data.queries
    if limit_queries is not None:
        queries = dict(list(queries.items())[:limit_queries])
    qrels = {q: data.qrels[q] for q in queries}
    first = _first_stage(run, data.corpus, queries, depth)
    model_names = _model_names(models, names, first.name)
    metrics = check_metrics(metrics)
    candidates = {q: list(first.run[q]) for q in queries}

    reranked: dict[str, dict[str, dict[str, float]]] = {}
    results: list[RunResult] = []
    for model, name in zip(models, model_names, strict=True):
        reranker = model if isinstance(model, MxbaiReranker) else MxbaiReranker(
            model, providers=providers, max_length=max_length, allow_fallback=allow_fallback,
            **({"batch_size": batch_size} if batch_size else {}))
        use_instruction = instruction if reranker.family == "v2" else None
        if instruction is not None and use_instruction is None:
            logger.warning("%s is a v1 (DeBERTa) reranker, which takes no instruction; scored without it", name)
        logger.info("reranking %d queries with %s", len(queries), reranker)
        scored, seconds, scored_queries, pairs = _rerank(
            reranker, name, queries, data.corpus, candidates, instruction=use_instruction, batch_size=batch_size,
            show_progress=show_progress)
        reranked[name] = scored
        info = ModelInfo(path=str(reranker.path), model_id=reranker.model_id, family=reranker.family,
                         dtype=reranker.manifest.dtype, providers=list(reranker.providers),
                         instruction=use_instruction)
        results.append(RunResult(name=name, kind="reranker", metrics={}, ci95={}, per_query={}, seconds=seconds,
                                 queries=scored_queries, pairs=pairs, model=info, run=scored))
        del reranker

    first_result = RunResult(
        name=first.name, kind="first_stage", metrics={}, ci95={}, per_query={}, seconds=first.seconds,
        queries=sum(1 for docs in first.run.values() if docs), pairs=sum(len(d) for d in first.run.values()),
        run=first.run)
    results.insert(0, first_result)
    all_runs = {r.name: r.run for r in results}
    for result in results:
        scores = score_run(qrels, result.run, metrics, result.name)
        result.metrics, result.ci95, result.per_query = scores.mean, scores.ci95, scores.per_query
    p_values = compare_runs(qrels, all_runs, metrics, stat_test=stat_test, max_p=max_p)
    for result in results:
        result.p_values = p_values[result.name]
        result.better_than = {
            m: [o.name for o in results if o.name != result.name and _significant(result.p_values[o.name][m], max_p)
                and result.metrics[m] > o.metrics[m]]
            for m in metrics
        }
    agreements = []
    for a, b in combinations(model_names, 2):
        scores = agreement(reranked[a], reranked[b], candidates, k=AGREEMENT_TOP_K)
        agreements.append(Agreement(a=a, b=b, spearman=scores.spearman, top10_overlap=scores.top_k_overlap,
                                    queries=scores.queries))
    summary = DatasetSummary(
        data_dir=str(data.data_dir), split=split,
        first_stage=f"{first.name} ({first.source})" if first.source != first.name else first.name,
        depth=depth, corpus_documents=len(data.corpus), queries=len(queries),
        queries_without_qrels=data.queries_without_qrels, qrels_unknown_documents=data.qrels_unknown_documents,
        qrels_unknown_queries=data.qrels_unknown_queries, run_unknown_documents=first.unknown_documents,
        queries_without_candidates=first.queries_without_candidates, limit_queries=limit_queries,
    )
    return EvalReport(data=summary, metrics=metrics, stat_test=stat_test, max_p=float(max_p),
                      query_ids=list(queries), runs=results, agreement=agreements)

