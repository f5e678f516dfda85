"""Batching by token budget: similar lengths together, padding to a multiple of 8, batch x length capped.

Sorting by length means a batch of short documents is not padded to the length of one long
document; the cap on batch x padded length keeps memory bounded when documents are long.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD_MULTIPLE = 8


def padded_length(n: int, multiple: int = PAD_MULTIPLE) -> int:
    return n + (-n % multiple)


def plan_batches(lengths: Sequence[int], *, batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Group row indices into batches, longest first, each within ``batch_size`` and the token cap.

    A single row longer than the cap still gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        row_width = padded_length(lengths[i])
        new_width = max(width, row_width)
        if current and (len(current) >= batch_size or new_width * (len(current) + 1) > max_batch_tokens):
            batches.append(current)
            current, new_width = [], row_width
        current.append(i)
        width = new_width
    if current:
        batches.append(current)
    return batches


def fixed_batches(n: int, *, batch_size: int) -> list[list[int]]:
    """Input-order batches of a fixed size: the baseline the token-budget plan is measured against."""
    return [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, *, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """int64 ``input_ids`` and ``attention_mask`` padded to a multiple of 8."""
    width = padded_length(max(len(r) for r in rows))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        n = len(row)
        if side == "right":
            ids[i, :n] = row
            mask[i, :n] = 1
        else:
            ids[i, width - n:] = row
            mask[i, width - n:] = 1
    return ids, mask
