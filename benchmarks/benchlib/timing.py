"""Wall-clock timing of repeated calls: warm-up calls untimed, then the timed repeats.

Example:
    >>> timing, last = time_calls(lambda: 42, warmup=1, repeats=3)
    >>> len(timing.latencies_s), last
    (3, 42)
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Latencies of the timed calls (seconds); the median is the figure tables report."""

    latencies_s: list[float]
    warmup: int = 0

    @property
    def median_s(self) -> float:
        return statistics.median(self.latencies_s)

    @property
    def min_s(self) -> float:
        return min(self.latencies_s)

    def per_s(self, n: float) -> float:
        """``n`` items (documents, tokens) per second at the median latency."""
        return n / self.median_s if self.median_s > 0 else math.nan


def time_calls(fn: Callable[[], T], *, warmup: int, repeats: int) -> tuple[Timing, T | Any]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; the timing and the last result."""
    result: T | Any = None
    for _ in range(warmup):
        result = fn()
    latencies = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        latencies.append(time.perf_counter() - t0)
    return Timing(latencies_s=latencies, warmup=warmup), result


def best_time(fn: Callable[[], Any], runs: int) -> float:
    """The fastest of ``runs`` timed calls after one untimed call: a ceiling measurement (matmul peak)."""
    fn()
    best = math.inf
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
