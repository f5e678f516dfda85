"""The markdown ``rerank_bench.py`` prints: the run's header, the backend table, batching, profiles, targets.

RESULTS.md copies this output verbatim, so its form is pinned by a test against the published
``benchmarks/results/xsmall-v1.md``, made from ``xsmall-v1.json`` by the code before these records.

Example:
    >>> print(markdown(RerankResult.from_json(json_path)))  # doctest: +SKIP
    ### base-v2 (v2), full depth (24 layers), cpu, 2 threads
"""

from __future__ import annotations

from benchlib.rerank.records import BackendRow, RerankResult
from benchlib.results import markdown_table, mib


def _header(result: RerankResult) -> list[str]:
    m = result.meta
    depth = m.num_hidden_layers
    depth_note = (f"**depth cut to {depth} of {m.full_depth} layers**" if m.cut_depth
                  else f"full depth ({depth} layers)")
    peaks = ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in result.peaks.rates.items())
    return [
        f"### {m.shape} ({m.family}), {depth_note}, {m.device}, {m.threads} threads",
        "",
        f"{m.n_docs} documents, {m.total_tokens:,} tokens in all (per row min {m.row_tokens_min}, "
        f"median {m.row_tokens_median:.0f}, max {m.row_tokens_max}); batch_size {m.batch_size}; "
        f"{m.repeats} timed repeats after {m.warmup} warm-up. Model work {m.model_flops / 1e9:,.1f} GFLOP "
        f"per query. Matmul peak (GFLOP/s, {result.peaks.size or None}^2): {peaks}; "
        f"'% peak' is against the best of them. Ratios are against {m.primary_reference} (mem ratio: its "
        "process peak RSS over this row's; 'ranking peak' is the peak after loading); drift against "
        f"{m.drift_reference} (its scores: std {m.reference_score_std:.3g}, range "
        f"{m.reference_score_range[0]:.3g}..{m.reference_score_range[1]:.3g}). "
        f"Load average at start {m.loadavg_start}, end {m.loadavg_end}."
        + ("" if m.exports_validated else " Exports made with validate=False (drift is measured here instead)."),
    ]


def _backend_cells(r: BackendRow, cuda: bool) -> list[str]:
    f, ms = r.figures, r.measured
    assert f is not None, f"row {r.name} has no figures (summarise first)"
    pct = "-" if f.fraction_of_peak is None else f"{100 * f.fraction_of_peak:.0f}%"
    cells = [r.name, f"{f.latency_median_s:.3f}", f"{f.latency_min_s:.3f}", f"{f.docs_per_s:.1f}",
             f"{f.tokens_per_s:,.0f}", f"{f.speedup:.2f}x", mib(ms.peak_rss), mib(ms.peak_rss_serving),
             f"{f.mem_ratio:.2f}x"]
    if cuda:
        cells.append(mib(ms.gpu_max_reserved or ms.gpu_mem_process))
    return cells + [f"{f.drift.max_abs:.2e}", f"{f.drift.spearman:.4f}", f"{f.drift.top10_overlap:.1f}",
                    f"{f.achieved_flops / 1e9:,.1f}", pct]


def backend_table(result: RerankResult) -> str:
    cuda = result.meta.device == "cuda"
    header = ["backend", "median s", "min s", "docs/s", "tokens/s", "speed-up", "peak RSS MiB", "ranking peak MiB",
              "mem ratio", *(["GPU MiB"] if cuda else []), "max abs diff", "Spearman", "top-10", "GFLOP/s", "% peak"]
    return markdown_table(header, [_backend_cells(r, cuda) for r in result.backends],
                          align="l" + ":r" * (len(header) - 1))


def batching_table(result: RerankResult) -> str:
    b = result.batching
    assert b is not None
    rows = []
    for cost, desc in ((b.budget, f"token budget (sorted, batch x length <= {b.max_batch_tokens:,})"),
                       (b.sorted, "sorted by length, fixed size, no cap"), (b.fixed, "input order, fixed size")):
        assert cost.latency_median_s is not None and b.fixed.latency_median_s is not None
        gain = b.fixed.latency_median_s / cost.latency_median_s
        rows.append([desc, str(cost.batches), f"{cost.padded_tokens:,}", f"{100 * cost.padding_efficiency:.0f}%",
                     f"{cost.latency_median_s:.3f}", f"{gain:.2f}x"])
    return markdown_table(["plan", "batches", "padded tokens", "padding efficiency", "median s",
                           "speed-up vs fixed"], rows, align="l:r:r:r:r:r")


def markdown(result: RerankResult) -> str:
    """The whole printout of one run (what RESULTS.md shows under a shape's heading)."""
    lines = [*_header(result), "", backend_table(result)]
    if result.batching is not None:
        lines += ["", "Batching (same artifact, same data): token budget vs fixed-size batches", "",
                  batching_table(result)]
    for dtype, prof in result.profiles.items():
        lines += ["", f"onnxruntime profile, onnx-{dtype}: {prof.kernel_s:.3f} s in kernels of a "
                  f"{prof.wall_s:.3f} s rank() call", "",
                  markdown_table(["op", "s", "share", "calls"],
                                 [[o.op, f"{o.seconds:.3f}", f"{100 * o.share:.1f}%", str(o.calls)]
                                  for o in prof.ops[:12]], align="l:r:r:r")]
    if result.targets:
        rows = []
        for t in result.targets:
            shown = f"{t.value:.2f}x" if t.target.metric in ("speedup", "mem_ratio") else f"{t.value:.4g}"
            note = f" (not the target condition: {t.note})" if t.note else ""
            rows.append([t.target.what, shown, f"{'yes' if t.passed else 'NO'}{note}"])
        lines += ["", markdown_table(["target", "measured", "met"], rows, align="l:r:c")]
    return "\n".join(lines)
