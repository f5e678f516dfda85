"""The one rule for turning scores into a ranking: descending score, ties by input position.

``MxbaiReranker.rank``, the HTTP server and the adapters all order documents with this function,
so a tie never ranks differently depending on which entry point was called.

Examples:
    >>> rank_order([0.2, 0.9, 0.2, 0.5], top_k=3)
    [1, 3, 0]
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
