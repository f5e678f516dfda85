"""Where an ONNX Runtime call spends its time: onnxruntime's own per-op profile of ``rank()``.

The reranker is built with profiling session options, ranks once to warm up and once more, and
the trace (both calls) is summed per op type and halved, so the figures are one call's.

Example:
    >>> OpTime("MatMul", 4.067, 0.425, 672).as_row()
    ['MatMul', 4.067, 0.425, 672]
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class OpTime:
    """One op type's kernel time in one call: seconds, share of all kernel time, number of kernel calls."""

    op: str
    seconds: float
    share: float
    calls: int

    def as_row(self) -> list[Any]:
        """The compact JSON form ``[op, s, share, calls]`` (rerank_bench's ``profiles``)."""
        return [self.op, self.seconds, self.share, self.calls]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> OpTime:
        op, seconds, share, calls = row
        return cls(str(op), float(seconds), float(share), int(calls))


@dataclass(frozen=True)
class OrtProfile:
    """One profiled ``rank()`` call: its wall time, the kernel time, and the ops by time (largest first)."""

    wall_s: float
    kernel_s: float
    ops: list[OpTime] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"wall_s": self.wall_s, "kernel_s": self.kernel_s, "ops": [o.as_row() for o in self.ops]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrtProfile:
        return cls(wall_s=data["wall_s"], kernel_s=data["kernel_s"], ops=[OpTime.from_row(r) for r in data["ops"]])


def read_trace(trace: Path, calls: int = 2) -> tuple[float, list[OpTime]]:
    """Kernel seconds of one call and the per-op times, from an onnxruntime profile of ``calls`` calls."""
    by_op: dict[str, list[float]] = {}
    for event in json.loads(Path(trace).read_text()):
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            acc = by_op.setdefault(event.get("args", {}).get("op_name", "?"), [0.0, 0])
            acc[0] += event.get("dur", 0)
            acc[1] += 1
    total = sum(v[0] for v in by_op.values())
    ops = sorted((OpTime(op, us / (calls * 1e6), us / total if total else 0.0, int(n) // calls)
                  for op, (us, n) in by_op.items()), key=lambda o: -o.seconds)
    return total / (calls * 1e6), ops


def profile_rank(artifact: str | Path, query: str, docs: Sequence[str], *, threads: int, batch_size: int,
                 providers: Sequence[str] = ("CPUExecutionProvider",), max_batch_tokens: int | None = None
                 ) -> OrtProfile:
    """Profile one ``MxbaiReranker.rank`` call (after a warm-up call) on ``artifact``."""
    import onnxruntime as ort

    from mxbai_integrations import MxbaiReranker

    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "rank")
        kw = {"max_batch_tokens": max_batch_tokens} if max_batch_tokens else {}
        reranker = MxbaiReranker(artifact, providers=list(providers), batch_size=batch_size, session_options=so,
                                 verify=False, **kw)
        reranker.rank(query, docs, return_documents=False)
        t0 = time.perf_counter()
        reranker.rank(query, docs, return_documents=False)
        wall = time.perf_counter() - t0
        kernel_s, ops = read_trace(Path(reranker.session.end_profiling()))
    return OrtProfile(wall_s=wall, kernel_s=kernel_s, ops=ops)
