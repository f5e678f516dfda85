"""Rankings: the one rule for ordering scores, and how far two rankings agree.

``rank_order`` is how ``MxbaiReranker.rank``, the HTTP server and the adapters order documents
(descending score, ties by input position), so a tie never ranks differently depending on the
entry point. ``spearman`` and ``top_k_overlap`` are the agreement statistics that export-time
validation, ``mxbai-onnx eval`` and the benchmarks all report: one definition, so a figure in
RESULTS.md means what the validation record means.

Examples:
    >>> rank_order([0.2, 0.9, 0.2, 0.5], top_k=3)
    [1, 3, 0]
    >>> round(spearman([0.1, 0.4, 0.3], [1.0, 3.0, 2.0]), 3)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_order(scores: Sequence[float] | np.ndarray, top_k: int | None = None) -> list[int]:
    """Indices of ``scores`` best first (ties by the lower index), at most ``top_k`` of them."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return []
    order = np.lexsort((np.arange(values.size), -values))
    return [int(i) for i in order[: top_k or values.size]]


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation with tied ranks averaged; NaN or inf is an error, never a rank.

    An argsort-based rank would give NaN a place (last) and report a high correlation for a model
    that returned no scores at all. Fewer than two values agree trivially (1.0); a constant side
    agrees only with another constant side.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman: {x.size} scores against {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("spearman: the scores contain NaN or inf, which have no rank")
    if x.size < 2:
        return 1.0
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = float(np.sqrt((rx**2).sum() * (ry**2).sum()))
    if denom == 0.0:
        return 1.0 if not rx.any() and not ry.any() else 0.0
    return float((rx * ry).sum() / denom)


def top_k_overlap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, k: int = 10) -> float:
    """The share of ``a``'s top ``k`` (by ``rank_order``) that is also in ``b``'s top ``k``."""
    n = min(k, len(a))
    if n == 0:
        return 1.0
    return len(set(rank_order(a, n)) & set(rank_order(b, n))) / n
