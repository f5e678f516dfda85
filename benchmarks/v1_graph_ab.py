"""A/B of the v1 (DeBERTa) graph: transformers' attention as traced vs onnx_export/deberta_patches.py.

Both artifacts are exported from the same code (the patch switched off for "old" with
``deberta_patches.disabled()``), then ``MxbaiReranker.rank`` runs on the same documents in one
process, old and new alternating call by call, so machine load hits both alike. Prints the
median times, their ratio, the largest score difference between the two graphs and an
onnxruntime per-op profile of one rank() call of each.

    python benchmarks/v1_graph_ab.py --shape xsmall-v1 --docs 100 --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchlib.inputs import make_inputs
from benchlib.machine import loadavg
from benchlib.ort_profile import OpTime, profile_rank
from benchlib.results import markdown_table, write_json
from benchlib.timing import Timing
from make_model import make_model

BENCH_DIR = Path(__file__).resolve().parent
ARMS = ("old", "new")


@dataclass
class ArmResult:
    """One graph's timed calls, its per-op profile and its node counts."""

    arm: str
    latencies_s: list[float]
    profile_kernel_s: float = 0.0
    ops: list[OpTime] = field(default_factory=list)
    graph_ops: dict[str, int] = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return Timing(self.latencies_s).median_s


def export_arm(checkpoint: Path, out: Path, arm: str, *, exporter: str, validate: bool, dtype: str) -> Path:
    """Export ``checkpoint`` with (new) or without (old) the DeBERTa attention patch."""
    import contextlib

    from onnx_export import deberta_patches
    from onnx_export.exporter import export_model

    ctx = deberta_patches.disabled() if arm == "old" else contextlib.nullcontext()
    with ctx:
        return export_model(checkpoint, out, dtype=dtype, force=True, validate=validate, progress=False,
                            exporter=exporter)


def graph_op_counts(artifact: Path) -> dict[str, int]:
    import collections

    import onnx

    model = onnx.load(str(artifact / "model.onnx"), load_external_data=False)
    return dict(collections.Counter(n.op_type for n in model.graph.node).most_common())


def time_ab(artifacts: dict[str, Path], query: str, docs: list[str], *, threads: int, batch_size: int,
            repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Alternate old/new rank() calls (one warm-up each); returns latencies and scores per arm."""
    from mxbai_integrations import MxbaiReranker

    rerankers = {arm: MxbaiReranker(path, providers=["CPUExecutionProvider"], batch_size=batch_size,
                                    intra_op_num_threads=threads, verify=False) for arm, path in artifacts.items()}
    scores: dict[str, list[float]] = {}
    for arm, reranker in rerankers.items():
        results = reranker.rank(query, docs, return_documents=False)
        by_index = {r.index: r.score for r in results}
        scores[arm] = [by_index[i] for i in range(len(docs))]
    latencies: dict[str, list[float]] = {arm: [] for arm in rerankers}
    for rep in range(repeats):
        order = ARMS if rep % 2 == 0 else ARMS[::-1]
        for arm in order:
            t0 = time.perf_counter()
            rerankers[arm].rank(query, docs, return_documents=False)
            latencies[arm].append(time.perf_counter() - t0)
            print(f"  repeat {rep + 1} {arm}: {latencies[arm][-1]:.3f} s", flush=True)
    return latencies, scores


def _op_cells(x: OpTime | None) -> list[str]:
    return [f"{x.seconds:.3f}", f"{x.share:.1%}", str(x.calls)] if x else ["-", "-", "0"]


def markdown(results: dict[str, ArmResult], max_diff: float, top: int) -> str:
    old, new = results["old"], results["new"]
    lines = [markdown_table(["graph", "median s", "runs (s)", "profile kernel s"],
                            [[r.arm, f"{r.median_s:.3f}", ", ".join(f"{x:.3f}" for x in r.latencies_s),
                              f"{r.profile_kernel_s:.3f}"] for r in (old, new)], align="l:r:l:r")]
    lines += ["", f"ratio old/new (median): {old.median_s / new.median_s:.3f}x; "
              f"max |score old - score new| = {max_diff:.3g}", ""]
    names = [o.op for o in old.ops[:top]] + [o.op for o in new.ops[:top] if o.op not in {p.op for p in old.ops[:top]}]
    o_by, n_by = {o.op: o for o in old.ops}, {o.op: o for o in new.ops}
    lines.append(markdown_table(["op", "old s", "old share", "old calls", "new s", "new share", "new calls"],
                                [[name, *_op_cells(o_by.get(name)), *_op_cells(n_by.get(name))] for name in names],
                                align="l" + ":r" * 6))
    graph = sorted(set(old.graph_ops) | set(new.graph_ops), key=lambda k: -old.graph_ops.get(k, 0))
    interesting = [k for k in graph if old.graph_ops.get(k, 0) != new.graph_ops.get(k, 0)]
    lines += ["", "ONNX nodes that changed (old -> new): " + ", ".join(
        f"{k} {old.graph_ops.get(k, 0)}->{new.graph_ops.get(k, 0)}" for k in interesting)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--shape", default="xsmall-v1", help="a -v1 shape of benchmarks/make_model.py (tiny-v1: smoke)")
    p.add_argument("--layers", type=int, default=None, help="cut depth (say so with the numbers)")
    p.add_argument("--docs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--exporter", default="auto", choices=("auto", "optimum", "torch"))
    p.add_argument("--dtype", default="fp32", choices=("fp32", "int8"), help="int8 is quantized from each fp32 graph")
    p.add_argument("--validate", action="store_true", help="validate both exports against CrossEncoder")
    p.add_argument("--reuse", action="store_true", help="reuse artifacts exported by an earlier run")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--top", type=int, default=10, help="ops per arm in the profile table")
    p.add_argument("--workdir", type=Path, default=BENCH_DIR / "out" / "v1_graph_ab")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if not args.shape.endswith("-v1"):
        p.error(f"--shape: the A/B is for v1 (DeBERTa) shapes, got {args.shape!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkpoint = make_model(args.shape, layers=args.layers)
    artifacts: dict[str, Path] = {}
    for arm in ARMS:
        out = args.workdir / f"{checkpoint.name}-{args.exporter}-{args.dtype}-{arm}"
        if not (args.reuse and (out / "model.onnx").is_file()):
            t0 = time.perf_counter()
            export_arm(checkpoint, out, arm, exporter=args.exporter, validate=args.validate, dtype=args.dtype)
            print(f"exported {arm} -> {out} [{time.perf_counter() - t0:.0f}s]", flush=True)
        artifacts[arm] = out

    query, docs, counts = make_inputs(artifacts["new"] / "tokenizer.json", args.docs, args.seed)
    print(f"{args.shape}{f' L{args.layers}' if args.layers else ''}: {len(docs)} docs, {sum(counts)} doc tokens, "
          f"{args.dtype}, threads {args.threads}, batch_size {args.batch_size}, exporter {args.exporter}", flush=True)
    load_start = loadavg()
    latencies, scores = time_ab(artifacts, query, docs, threads=args.threads, batch_size=args.batch_size,
                                repeats=args.repeats)
    max_diff = max(abs(a - b) for a, b in zip(scores["old"], scores["new"], strict=True))
    results = {arm: ArmResult(arm, latencies[arm], graph_ops=graph_op_counts(artifacts[arm])) for arm in ARMS}
    if not args.no_profile:
        for arm in ARMS:
            prof = profile_rank(artifacts[arm], query, docs, threads=args.threads, batch_size=args.batch_size)
            results[arm].profile_kernel_s, results[arm].ops = prof.kernel_s, prof.ops
    load_end = loadavg()
    print(f"\nload average at start {load_start}, end {load_end}\n")
    print(markdown(results, max_diff, args.top))
    if args.json:
        write_json(args.json, {
            "args": {k: str(v) for k, v in vars(args).items()}, "max_abs_score_diff": max_diff,
            "ratio_old_over_new": results["old"].median_s / results["new"].median_s,
            "loadavg_start": load_start, "loadavg_end": load_end,
            "arms": {arm: {**asdict(r), "median_s": r.median_s} for arm, r in results.items()},
        }, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
