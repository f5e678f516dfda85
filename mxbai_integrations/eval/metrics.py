"""Scores and tests through ranx (metrics, paired significance) and scipy (confidence intervals): nothing hand-written.

ranx compiles its metrics with numba on first use (tens of seconds once per environment; numba
caches the result on disk), so a process computes everything it needs in as few calls as it can.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from mxbai_integrations.errors import ArgumentError, MissingExtraError
from mxbai_integrations.ranking import spearman

try:
    import ranx
    from scipy import stats
except ImportError as exc:  # pragma: no cover - exercised by the CLI's one-line error
    raise MissingExtraError('mxbai_integrations.eval needs ranx: pip install "mxbai-integrations[eval]"') from exc

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100", "map")
STAT_TESTS = ("student", "fisher", "tukey")
_DISPLAY = {"ndcg": "NDCG", "mrr": "MRR", "map": "MAP", "recall": "Recall", "precision": "P", "hits": "Hits",
            "hit_rate": "HitRate", "r-precision": "R-Prec", "bpref": "BPref", "f1": "F1", "dcg": "DCG"}

# Metrics whose values lie in [0, 1]; the others (hits, dcg) are counts or unnormalised gains, >= 0.
BOUNDED_BY_ONE = frozenset({"ndcg", "ndcg_burges", "mrr", "map", "recall", "precision", "hit_rate", "r-precision",
                            "bpref", "f1", "rbp"})

Run = Mapping[str, Mapping[str, float]]


@contextmanager
def _quiet_numba() -> Iterator[None]:
    """ranx's kernels trigger numba type-safety warnings while compiling; they say nothing about the data."""
    with warnings.catch_warnings():
        try:
            from numba.core.errors import NumbaWarning

            warnings.simplefilter("ignore", NumbaWarning)
        except ImportError:  # pragma: no cover
            pass
        yield


def display_name(metric: str) -> str:
    """ranx's "ndcg@10" as a table heading: "NDCG@10"."""
    name, _, cut = metric.partition("@")
    return _DISPLAY.get(name, name) + (f"@{cut}" if cut else "")


def value_range(metric: str) -> tuple[float, float | None]:
    """(lowest, highest or None) a ranx metric can take: what a confidence interval must stay inside."""
    return 0.0, 1.0 if metric.partition("@")[0] in BOUNDED_BY_ONE else None


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """Names ranx knows, checked on a one-query case before any model runs (this also warms numba up)."""
    if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
        raise ArgumentError(f"metrics must be a non-empty list of ranx metric names, got {metrics!r}")
    out = list(metrics)
    if len(set(out)) != len(out):
        raise ArgumentError(f"metrics: duplicates in {out!r}")
    for metric in out:
        if not isinstance(metric, str):
            raise ArgumentError(f"metrics: {metric!r} is not a ranx metric name")
        try:
            with _quiet_numba():
                ranx.evaluate(ranx.Qrels({"q": {"d": 1}}), ranx.Run({"q": {"d": 1.0}}), metric)
        except Exception:
            raise ArgumentError(f"metrics: {metric!r} is not a ranx metric (e.g. 'ndcg@10', 'mrr@10', 'recall@100', "
                             "'map')") from None
    return out


def _qrels(qrels: Mapping[str, Mapping[str, int]]) -> ranx.Qrels:
    return ranx.Qrels({q: dict(docs) for q, docs in qrels.items()})


def _run(run: Run, query_ids: Sequence[str], name: str) -> ranx.Run:
    # Every evaluated query is present, empty when the system returned nothing: it scores 0, as in trec_eval -c.
    return ranx.Run({q: dict(run.get(q, {})) for q in query_ids}, name=name)


@dataclass
class MetricScores:
    """One run's scores: the mean, a 95% confidence half-width (t distribution) and the per-query values."""

    mean: dict[str, float]
    ci95: dict[str, float]
    per_query: dict[str, list[float]]


def score_run(qrels: Mapping[str, Mapping[str, int]], run: Run, metrics: Sequence[str], name: str) -> MetricScores:
    """ranx's per-query values for each metric, in ``qrels`` order."""
    query_ids = list(qrels)
    ranx_run = _run(run, query_ids, name)
    with _quiet_numba():
        ranx.evaluate(_qrels(qrels), ranx_run, list(metrics), return_mean=False, make_comparable=True)
    mean: dict[str, float] = {}
    ci95: dict[str, float] = {}
    per_query: dict[str, list[float]] = {}
    for metric in metrics:
        by_query = ranx_run.scores[metric]
        values = np.array([float(by_query[q]) for q in query_ids], dtype=np.float64)
        per_query[metric] = values.tolist()
        mean[metric] = float(values.mean())
        n = values.size
        ci95[metric] = float(stats.t.ppf(0.975, n - 1) * stats.sem(values)) if n > 1 else 0.0
    return MetricScores(mean=mean, ci95=ci95, per_query=per_query)


def compare_runs(
    qrels: Mapping[str, Mapping[str, int]], runs: Mapping[str, Run], metrics: Sequence[str], *,
    stat_test: str = "student", max_p: float = 0.05, seed: int = 42,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Paired significance tests between every two runs (ranx.compare): run -> other run -> metric -> p-value."""
    if len(runs) < 2:
        return {name: {} for name in runs}
    query_ids = list(qrels)
    ranx_runs = [_run(run, query_ids, name) for name, run in runs.items()]
    with _quiet_numba():
        report = ranx.compare(_qrels(qrels), ranx_runs, list(metrics), stat_test=stat_test, max_p=max_p,
                              random_seed=seed, make_comparable=True)
    table = report.to_dict()
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name in runs:
        comparisons = table[name]["comparisons"]
        out[name] = {other: {m: _p_value(p) for m, p in comparisons[other].items()} for other in runs if other != name}
    return out


def _p_value(p: Any) -> float | None:
    # Two runs equal on every query make the test statistic undefined: no p-value, not NaN.
    value = float(p)
    return None if math.isnan(value) else value


def _top(scores: Mapping[str, float], order: Sequence[str], k: int) -> set[str]:
    # Ties keep the first stage's order, the same pool both models ranked.
    position = {d: i for i, d in enumerate(order)}
    return set(sorted(scores, key=lambda d: (-scores[d], position.get(d, 0)))[:k])


@dataclass
class AgreementScores:
    spearman: float | None
    top_k_overlap: float | None
    queries: int


def agreement(a: Run, b: Run, candidates: Mapping[str, Sequence[str]], *, k: int = 10) -> AgreementScores:
    """How alike two rerankers order the same candidates: Spearman's rho (scipy) and top-k overlap, per query averaged.

    Queries with fewer than two candidates say nothing about order and are left out; so are, for
    Spearman only, queries where one model gives every candidate the same score (rho undefined).
    """
    rhos: list[float] = []
    overlaps: list[float] = []
    for query_id, docs in candidates.items():
        if len(docs) < 2:
            continue
        xa = np.array([a[query_id][d] for d in docs], dtype=np.float64)
        xb = np.array([b[query_id][d] for d in docs], dtype=np.float64)
        if np.ptp(xa) > 0 and np.ptp(xb) > 0:
            rhos.append(spearman(xa, xb))
        top_a = _top(a[query_id], docs, k)
        top_b = _top(b[query_id], docs, k)
        overlaps.append(len(top_a & top_b) / min(k, len(docs)))
    return AgreementScores(
        spearman=float(np.mean(rhos)) if rhos else None,
        top_k_overlap=float(np.mean(overlaps)) if overlaps else None,
        queries=len(overlaps),
    )
