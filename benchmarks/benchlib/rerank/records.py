"""The records of one ``rerank_bench.py`` run, and their JSON form.

The JSON file is the one RESULTS.md's published tables were made from (``benchmarks/results/``),
so the records write exactly its keys: a backend row is one flat object (what was run, what the
child measured, the figures derived from it), and ``from_dict`` reads files written before these
records existed. Key changes against those files, all additive: ``budget`` on a row whose
``max_batch_tokens`` was asked for (a ``--sweep-budgets`` row), and ``validation``/``created_with`` on
a reused artifact. ``variant`` is written only when true, as before.

Example:
    >>> result = RerankResult.from_json(Path("benchmarks/results/xsmall-v1.json"))  # doctest: +SKIP
    >>> result.row("onnx-int8").figures.drift.spearman  # doctest: +SKIP
    0.9963...
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib.artifacts import ExportedArtifact
from benchlib.flops import MatmulPeaks
from benchlib.ort_profile import OrtProfile
from benchlib.results import Drift, field_names, pick, write_json

ONNX, REFERENCE = "onnx", "reference"


@dataclass(frozen=True)
class BackendPlan:
    """One row to run: an ONNX artifact under a batch plan, or a reference library in a torch dtype."""

    name: str
    kind: str  # ONNX or REFERENCE
    dtype: str | None = None  # onnx: fp32 / int8 / fp16, or fp32-eager (the graph before fused attention)
    batching: str | None = None  # onnx: "budget" (the reranker's own), "sorted", "fixed"
    budget: int | None = None  # onnx: max_batch_tokens asked for; None is the run's --max-batch-tokens
    variant: bool = False  # a batching, budget or eager variant of a main row
    reference: str | None = None  # "crossencoder", "mxbai-v1", "mxbai-v2"
    torch_dtype: str | None = None  # fp32 / fp16 / bf16
    label: str | None = None  # the library's class name, as the row name shows it


@dataclass(frozen=True)
class Measured:
    """What a backend's child process reported (bytes, seconds, input-order scores)."""

    load_s: float
    latencies_s: list[float]
    scores: list[float]
    rss_after_imports: int
    rss_after_load: int
    peak_rss: int  # VmHWM of the whole process: imports, load, ranking
    peak_rss_load: int | None = None  # VmHWM when loaded (None: the kernel could not reset VmHWM)
    peak_rss_serving: int | None = None  # VmHWM of the timed calls only
    rss_end: int | None = None
    providers: list[str] | None = None  # onnx
    session_threads: int | None = None  # onnx
    max_batch_tokens: int | None = None  # onnx: the reranker's effective budget
    torch_threads: int | None = None  # reference
    gpu_mem_process: int | None = None  # cuda: what nvidia-smi attributes to the process
    gpu_max_allocated: int | None = None  # cuda, torch
    gpu_max_reserved: int | None = None  # cuda, torch

    # Fields one kind of row has and the other lacks: left out of the JSON when None, as before.
    KIND_SPECIFIC = ("providers", "session_threads", "max_batch_tokens", "torch_threads", "gpu_mem_process",
                     "gpu_max_allocated", "gpu_max_reserved")


@dataclass(frozen=True)
class Figures:
    """What a row's measurement means against the run: rates, ratios to the primary reference, drift."""

    latency_median_s: float
    latency_min_s: float
    docs_per_s: float
    tokens_per_s: float
    speedup: float  # primary reference's median latency over this row's
    mem_ratio: float  # primary reference's peak RSS over this row's
    achieved_flops: float
    fraction_of_peak: float | None
    drift: Drift  # against the drift reference (torch fp32)
    drift_vs_onnx_fp32: Drift | None = None

    def value(self, metric: str) -> float:
        """A figure by name, as targets name them: a field here or a drift statistic."""
        if metric in ("max_abs", "spearman", "top10_overlap"):
            return float(getattr(self.drift, metric))
        return float(getattr(self, metric))


@dataclass
class BackendRow:
    """One table row: its plan, its child's measurement, the load average before it ran, its figures."""

    plan: BackendPlan
    measured: Measured
    loadavg_before: list[float] | None = None
    figures: Figures | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    def to_dict(self) -> dict[str, Any]:
        plan = {k: v for k, v in asdict(self.plan).items() if v is not None and not (k == "variant" and not v)}
        measured = {k: v for k, v in asdict(self.measured).items()
                    if v is not None or k not in Measured.KIND_SPECIFIC}
        out: dict[str, Any] = {**plan, "loadavg_before": self.loadavg_before, **measured}
        if self.figures is not None:
            f = self.figures
            out.update({k: getattr(f, k) for k in field_names(Figures) - {"drift", "drift_vs_onnx_fp32"}})
            out.update(f.drift.to_dict())
            if f.drift_vs_onnx_fp32 is not None:
                out["drift_vs_onnx_fp32"] = f.drift_vs_onnx_fp32.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendRow:
        figures = None
        if "latency_median_s" in data:
            vs = data.get("drift_vs_onnx_fp32")
            figures = pick(Figures, data, drift=Drift.from_dict(data),
                           drift_vs_onnx_fp32=None if vs is None else Drift.from_dict(vs))
        return cls(plan=pick(BackendPlan, data), measured=pick(Measured, data),
                   loadavg_before=data.get("loadavg_before"), figures=figures)


@dataclass(frozen=True)
class PlanCost:
    """What one batch plan feeds the model for the run's rows, and (once measured) how long it took."""

    batches: int
    padded_tokens: int
    real_tokens: int
    padding_efficiency: float
    latency_median_s: float | None = None
    latency_min_s: float | None = None


@dataclass(frozen=True)
class BatchingStudy:
    """Token budget against fixed-size batches on the same artifact and data."""

    max_batch_tokens: int
    budget: PlanCost
    sorted: PlanCost
    fixed: PlanCost

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchingStudy:
        return cls(max_batch_tokens=data["max_batch_tokens"],
                   **{plan: pick(PlanCost, data[plan]) for plan in ("budget", "sorted", "fixed")})


@dataclass(frozen=True)
class Target:
    """An issue's target for one row: ``metric`` at least ``min`` or at most ``max``."""

    row: str
    metric: str  # a Figures field, or drift's "spearman" / "top10_overlap"
    what: str
    min: float | None = None
    max: float | None = None

    def met(self, value: float) -> bool:
        if self.min is not None:
            return value >= self.min
        return self.max is None or value <= self.max


@dataclass(frozen=True)
class TargetCheck:
    """A target measured in this run; ``note`` says where the run is not the target's condition."""

    target: Target
    value: float
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        t = {k: v for k, v in asdict(self.target).items() if v is not None}
        return {**t, "value": self.value, "passed": self.passed, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetCheck:
        return cls(target=pick(Target, data), value=data["value"], passed=data["passed"], note=data.get("note", ""))


@dataclass
class RunMeta:
    """How the run was made: shape, inputs, references, machine, load average, versions, command."""

    shape: str
    family: str
    device: str
    threads: int
    num_hidden_layers: int
    full_depth: int
    cut_depth: bool
    n_docs: int
    seed: int
    batch_size: int
    repeats: int
    warmup: int
    query: str
    doc_tokens: list[int]
    row_tokens: list[int]
    total_tokens: int
    row_tokens_min: int
    row_tokens_max: int
    row_tokens_median: float
    model_flops: float
    flops_formula: str
    primary_reference: str  # speed and memory ratios are against this row
    drift_reference: str  # drift is against this row (torch fp32)
    reference_score_std: float
    reference_score_range: list[float]
    exports_validated: bool
    artifacts: dict[str, ExportedArtifact]
    checkpoint: str
    loadavg_start: list[float]
    loadavg_end: list[float]
    wall_s: float
    date: str
    machine: dict[str, Any]
    versions: dict[str, str]
    command: str

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["artifacts"] = {d: a.to_dict() for d, a in self.artifacts.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMeta:
        arts = {d: ExportedArtifact.from_dict(a) for d, a in data.get("artifacts", {}).items()}
        return pick(cls, data, artifacts=arts)


@dataclass
class RerankResult:
    """A whole run: the file ``--json`` writes and ``plot.py`` reads."""

    meta: RunMeta
    peaks: MatmulPeaks
    backends: list[BackendRow]
    batching: BatchingStudy | None = None
    profiles: dict[str, OrtProfile] = field(default_factory=dict)
    targets: list[TargetCheck] = field(default_factory=list)

    def row(self, name: str) -> BackendRow:
        """The row called ``name`` (KeyError naming the rows there are)."""
        for r in self.backends:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; this run has {[r.name for r in self.backends]}")

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta.to_dict(), "peaks": self.peaks.to_dict(),
                "backends": [r.to_dict() for r in self.backends],
                "batching": None if self.batching is None else asdict(self.batching),
                "profiles": {d: p.to_dict() for d, p in self.profiles.items()},
                "targets": [t.to_dict() for t in self.targets]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankResult:
        return cls(meta=RunMeta.from_dict(data["meta"]), peaks=MatmulPeaks.from_dict(data.get("peaks") or {}),
                   backends=[BackendRow.from_dict(r) for r in data["backends"]],
                   batching=BatchingStudy.from_dict(data["batching"]) if data.get("batching") else None,
                   profiles={d: OrtProfile.from_dict(p) for d, p in (data.get("profiles") or {}).items()},
                   targets=[TargetCheck.from_dict(t) for t in data.get("targets") or []])

    @classmethod
    def from_json(cls, path: Path) -> RerankResult:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def write_json(self, path: Path) -> Path:
        return write_json(path, self.to_dict(), indent=1)
