"""mxbai_integrations.ranking: the agreement statistics that validation, eval and the benchmarks report.

``spearman`` is the single definition behind every rank-agreement figure, so it must refuse NaN or
inf scores rather than return a meaningless number, and must rank ties exactly as scipy does.
"""

from __future__ import annotations

import numpy as np
import pytest


def test_spearman_refuses_non_finite_scores_and_ranks_ties_like_scipy() -> None:
    from scipy.stats import spearmanr

    from mxbai_integrations.ranking import spearman

    with pytest.raises(ValueError, match="NaN or inf"):
        spearman([0.9, np.nan, 0.1], [0.9, 0.5, 0.1])
    with pytest.raises(ValueError, match="NaN or inf"):
        spearman([0.9, 0.5, 0.1], [np.inf, 0.5, 0.1])
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 4, 12).astype(float)  # many ties
        b = rng.normal(size=12)
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0 and spearman([2, 2], [5, 5]) == 1.0
