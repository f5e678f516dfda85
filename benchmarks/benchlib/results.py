"""Result records shared by the benchmarks: score drift, markdown tables, JSON in and out.

Records that cross a boundary (a child process's answer, a JSON file, a printed table) are
dataclasses that know their own JSON and table form, so a field is named in one place.

``Drift`` uses the project's one Spearman and top-k overlap (``mxbai_integrations.ranking``), the
statistics export validation and ``mxbai-onnx eval`` report, so a benchmark figure means what a
validation record means.

Example:
    >>> d = Drift.of([0.1, 0.7, 0.4], [0.2, 0.9, 0.3])
    >>> d.spearman, d.top10_overlap
    (1.0, 1.0)
    >>> markdown_table(["backend", "s"], [["onnx", "1.0"]], align="l:r")
    '| backend | s |\\n|---|---:|\\n| onnx | 1.0 |'
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mxbai_integrations.ranking import spearman, top_k_overlap

TOP_K_OVERLAP = 10
R = TypeVar("R")


@dataclass(frozen=True)
class Drift:
    """How far one backend's scores are from a reference's on the same documents.

    Ranks are taken at float32, the reference libraries' output precision: a v1 sigmoid saturates
    to 1.0 in float32 (logit > ~17), and a float64 score would break ties the reference cannot see.
    A NaN or inf score gives NaN statistics (the row shows it) instead of a rank.
    """

    max_abs: float
    spearman: float
    top10_overlap: float

    @classmethod
    def of(cls, scores: Sequence[float], reference: Sequence[float], k: int = TOP_K_OVERLAP) -> Drift:
        a, b = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"drift: {a.size} scores against {b.size} reference scores")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            return cls(max_abs=math.nan, spearman=math.nan, top10_overlap=math.nan)
        max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        return cls(max_abs=max_abs, spearman=spearman(a32, b32), top10_overlap=top_k_overlap(a32, b32, k))

    @property
    def finite(self) -> bool:
        return math.isfinite(self.spearman)

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Drift:
        return cls(max_abs=data["max_abs"], spearman=data["spearman"], top10_overlap=data["top10_overlap"])


# ------------------------------------------------------------------------------------------------
# Records <-> JSON
# ------------------------------------------------------------------------------------------------
def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def pick(cls: type[R], data: Mapping[str, Any], **overrides: Any) -> R:
    """``cls`` from the keys of ``data`` that are its fields (others ignored; missing ones default).

    How a reader stays able to read an older JSON file that lacked a field, or had more.
    """
    names = field_names(cls)
    return cls(**{k: v for k, v in data.items() if k in names and k not in overrides}, **overrides)


def jsonable(obj: Any) -> Any:
    """Plain JSON values from records: a record's own ``to_dict`` first, then dataclasses, tuples, paths."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        to_dict = getattr(obj, "to_dict", None)
        if callable(to_dict):
            return jsonable(to_dict())
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> Path:
    """Write ``data`` (records allowed) as JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(data), indent=indent))
    return path


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------
_ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, align: str = "") -> str:
    """A GitHub markdown table; ``align`` is one letter per column (``l``, ``r``, ``c``) joined by ``:``.

    Columns without a letter are left-aligned.
    """
    letters = [a for a in align.split(":") if a] if align else []
    letters += ["l"] * (len(header) - len(letters))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(_ALIGN[a] for a in letters) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def mib(x: float | None) -> str:
    """Bytes as whole MiB with thousands separators, ``-`` for unknown."""
    return "-" if x is None else f"{x / 2**20:,.0f}"
