"""What one ``rerank_bench.py`` run measures, and the figures derived from the measurements.

``plan_backends`` lists the rows (ONNX dtypes, batching and budget variants, the references,
primary first); ``summarise`` turns each row's measurement into rates, ratios against the primary
reference and drift against the torch fp32 one; ``batching_study`` and ``check_targets`` make the
two smaller tables.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchlib.rerank.children import HUGE_BUDGET
from benchlib.rerank.records import (
    ONNX,
    REFERENCE,
    BackendPlan,
    BackendRow,
    BatchingStudy,
    Figures,
    PlanCost,
    Target,
    TargetCheck,
)
from benchlib.results import Drift

# The targets, per shape (``@cuda`` for the GPU run); ratios against the primary reference.
TARGETS: dict[str, list[Target]] = {
    "xsmall-v1": [
        Target("onnx-fp32", "speedup", "fp32 rank() >= 2x CrossEncoder", min=2.0),
        Target("onnx-int8", "speedup", "int8 rank() >= 3.5x CrossEncoder", min=3.5),
        Target("onnx-int8", "top10_overlap", "int8 top-10 overlap >= 0.9", min=0.9),
        Target("onnx-int8", "spearman", "int8 Spearman >= 0.98", min=0.98),
    ],
    "base-v2": [
        Target("onnx-fp32", "speedup", "fp32 rank() >= 2.5x MxbaiRerankV2", min=2.5),
        Target("onnx-fp32", "mem_ratio", "fp32 peak RSS >= 4x smaller", min=4.0),
    ],
    "large-v2@cuda": [
        Target("onnx-fp16", "latency_median_s", "large-v2 fp16 < 0.25 s/query", max=0.25),
        Target("onnx-fp16", "speedup", "fp16 >= 2x the PyTorch reference", min=2.0),
    ],
}
REFERENCE_LABELS = {"crossencoder": "CrossEncoder", "mxbai-v1": "MxbaiRerankV1", "mxbai-v2": "MxbaiRerankV2"}


def base_dtype(device: str) -> str:
    """The ONNX dtype the batching rows and ``--skip-reference`` ratios use: fp16 on CUDA, else fp32."""
    return "fp16" if device == "cuda" else "fp32"


def plan_backends(fam: str, dtypes: Sequence[str], device: str, batching: bool,
                  sweep: Sequence[int] = ()) -> list[BackendPlan]:
    """The rows of one run: ONNX dtypes, the batching variants, then the references (primary first)."""
    rows = [BackendPlan(f"onnx-{dtype}", ONNX, dtype=dtype, batching="budget") for dtype in dtypes]
    base = base_dtype(device)
    if batching:
        rows += [BackendPlan(f"onnx-{base}-{mode}", ONNX, dtype=base, batching=mode, variant=True)
                 for mode in ("sorted", "fixed")]
    rows += [BackendPlan(f"onnx-{base}-budget{budget}", ONNX, dtype=base, batching="budget", budget=budget,
                         variant=True) for budget in sweep]
    # On cuda the fp32 rows are the drift reference only; speed is compared with fp16/bf16.
    torch_dtypes = ["fp16", "bf16", "fp32"] if device == "cuda" else ["fp32"]
    refs = ["crossencoder", "mxbai-v1"] if fam == "v1" else ["mxbai-v2"]
    rows += [BackendPlan(f"torch-{REFERENCE_LABELS[ref]}-{td}", REFERENCE, reference=ref, torch_dtype=td,
                         label=REFERENCE_LABELS[ref]) for ref in refs for td in torch_dtypes]
    return rows


def summarise(rows: Sequence[BackendRow], *, n_docs: int, tokens: int, flops: float, peak: float,
              primary: str, drift_ref: str) -> None:
    """Set each row's figures: rates, ratios against the primary reference, drift."""
    by_name = {r.name: r for r in rows}
    ref, dref = by_name[primary].measured, by_name[drift_ref].measured
    fp32 = by_name.get("onnx-fp32")
    ref_median = statistics.median(ref.latencies_s)
    for r in rows:
        ms = r.measured
        median = statistics.median(ms.latencies_s)
        achieved = flops / median
        r.figures = Figures(
            latency_median_s=median, latency_min_s=min(ms.latencies_s), docs_per_s=n_docs / median,
            tokens_per_s=tokens / median, speedup=ref_median / median, mem_ratio=ref.peak_rss / ms.peak_rss,
            achieved_flops=achieved, fraction_of_peak=achieved / peak if peak else None,
            drift=Drift.of(ms.scores, dref.scores),
            drift_vs_onnx_fp32=(Drift.of(ms.scores, fp32.measured.scores)
                                if fp32 is not None and r is not fp32 else None))


def plan_costs(lengths: Sequence[int], batch_size: int, max_tokens: int) -> dict[str, PlanCost]:
    """Padded tokens each batch plan feeds the model for these rows (what the batching rows differ in)."""
    from mxbai_integrations.batching import fixed_batches, padded_length, plan_batches

    real = sum(lengths)

    def cost(batches: list[list[int]]) -> PlanCost:
        padded = sum(len(b) * padded_length(max(lengths[i] for i in b)) for b in batches)
        return PlanCost(batches=len(batches), padded_tokens=padded, real_tokens=real, padding_efficiency=real / padded)

    return {"budget": cost(plan_batches(lengths, batch_size=batch_size, max_batch_tokens=max_tokens)),
            "sorted": cost(plan_batches(lengths, batch_size=batch_size, max_batch_tokens=HUGE_BUDGET)),
            "fixed": cost(fixed_batches(len(lengths), batch_size=batch_size))}


def batching_study(rows: Sequence[BackendRow], lengths: Sequence[int], batch_size: int,
                   device: str) -> BatchingStudy | None:
    """Token budget vs fixed-size batches, when the run has the three rows that compare them."""
    by_name = {r.name: r for r in rows}
    base = f"onnx-{base_dtype(device)}"
    names = {"budget": base, "sorted": f"{base}-sorted", "fixed": f"{base}-fixed"}
    if not all(n in by_name for n in names.values()):
        return None
    budget = by_name[base].measured.max_batch_tokens
    assert budget is not None, f"{base} reported no max_batch_tokens"
    costs = plan_costs(lengths, batch_size, budget)
    timed = {}
    for plan, name in names.items():
        f = by_name[name].figures
        assert f is not None
        c = costs[plan]
        timed[plan] = PlanCost(c.batches, c.padded_tokens, c.real_tokens, c.padding_efficiency,
                               latency_median_s=f.latency_median_s, latency_min_s=f.latency_min_s)
    return BatchingStudy(max_batch_tokens=budget, **timed)


def check_targets(key: str, rows: Sequence[BackendRow], note: str) -> list[TargetCheck]:
    """Each issue target for this shape, measured; ``note`` says when the run is not the target's condition."""
    by_name = {r.name: r for r in rows}
    out = []
    for t in TARGETS.get(key, []):
        row = by_name.get(t.row)
        if row is None or row.figures is None:
            continue
        value = row.figures.value(t.metric)
        out.append(TargetCheck(target=t, value=value, passed=bool(t.met(value)), note=note))
    return out
