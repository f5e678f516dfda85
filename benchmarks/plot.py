"""Draw the README figure from one or more rerank_bench.py JSON results: latency per backend, speed-ups.

    python benchmarks/plot.py benchmarks/out/xsmall-v1.json benchmarks/out/base-v2.json -o benchmarks/figure.png

One panel per result file, so a v1 and a v2 shape sit side by side; the title of each panel
carries the depth, thread count and device, because a cut-depth run is not the real model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchlib.rerank.records import REFERENCE, BackendRow, RerankResult, RunMeta

ONNX_COLOR, REF_COLOR, ALT_COLOR = "#1f77b4", "#bbbbbb", "#9ecae1"


def _panel_title(meta: RunMeta) -> str:
    depth = (f"{meta.num_hidden_layers} of {meta.full_depth} layers" if meta.cut_depth
             else f"{meta.num_hidden_layers} layers")
    where = f"{meta.threads} CPU threads" if meta.device == "cpu" else "GPU"
    return f"{meta.shape} ({depth}), {meta.n_docs} docs, {where}"


def _color(row: BackendRow) -> str:
    if row.plan.kind == REFERENCE:
        return REF_COLOR
    return ALT_COLOR if row.plan.variant else ONNX_COLOR


def _label(row: BackendRow, primary: str) -> str:
    f = row.figures
    assert f is not None
    label = f"{f.latency_median_s:.2f} s"
    if row.name != primary:
        label += f"  {f.speedup:.1f}x"
    return label + f"  |  {row.measured.peak_rss / 2**30:.2f} GiB peak RSS"


def plot(results: list[RerankResult], out: Path, *, show_variants: bool = True) -> Path:
    """Horizontal latency bars (median, with the min as a tick), annotated with the speed-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [[r for r in res.backends if show_variants or not r.plan.variant] for res in results]
    heights = [len(rows) for rows in panels]
    fig, axes = plt.subplots(len(results), 1, figsize=(8.5, 1.2 + 0.45 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, result, rows in zip(axes[:, 0], results, panels, strict=True):
        figures = [r.figures for r in rows][::-1]
        assert all(f is not None for f in figures)
        med = [f.latency_median_s for f in figures if f is not None]
        mins = [f.latency_min_s for f in figures if f is not None]
        bars = ax.barh([r.name for r in rows][::-1], med, color=[_color(r) for r in rows][::-1])
        ax.scatter(mins, range(len(mins)), marker="|", color="black", s=80, zorder=3, label="min")
        top = max(med)
        for bar, row in zip(bars, rows[::-1], strict=True):
            ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2,
                    _label(row, result.meta.primary_reference), va="center", fontsize=8)
        m = result.meta
        ax.set_xlim(0, top * 1.6)
        ax.legend(loc="lower right", fontsize=7)
        ax.set_title(_panel_title(m), fontsize=10)
        ax.set_xlabel(f"rank() latency, median of {m.repeats} (s); speed-up vs {m.primary_reference}; "
                      f"load average {m.loadavg_start[0]:.2f} at start", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSON files written by rerank_bench.py --json")
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/figure.png"))
    parser.add_argument("--no-variants", action="store_true", help="leave out batching-variant and sweep rows")
    args = parser.parse_args(argv)
    results = [RerankResult.from_json(p) for p in args.results]
    out = plot(results, args.out, show_variants=not args.no_variants)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
