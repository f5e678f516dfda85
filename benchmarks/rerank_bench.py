"""Speed, memory and drift of MxbaiReranker (ONNX Runtime) against the PyTorch references, in one run.

One query over N documents (lengths drawn from 30..500 tokens, skewed short, fixed seed) is
ranked by every backend: the ONNX artifacts (fp32 / int8 / fp16) through ``MxbaiReranker.rank``
and the libraries users would otherwise serve with (sentence-transformers ``CrossEncoder`` and
``mxbai_rerank.MxbaiRerankV1`` for v1, ``mxbai_rerank.MxbaiRerankV2`` for v2), same threads.
Each backend runs in a fresh subprocess so its peak RSS is its own and an ONNX process never
imports torch; the parent only orchestrates, compares scores and prints the tables.

    python benchmarks/rerank_bench.py --shape xsmall-v1 --json benchmarks/out/xsmall-v1.json
    python benchmarks/rerank_bench.py --shape tiny-v1 --docs 8 --repeats 1 --no-batching  # smoke run

Model FLOPs (``benchlib.flops.model_flops``) are counted on the real (unpadded) tokens, so padding
and the reference's full-vocabulary lm_head count as waste against the backend that does them.
The parts live in ``benchlib.rerank``: records and JSON, the printout, the children, the plan.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchlib.artifacts import ExportedArtifact, artifact_stamp, ensure_artifact, is_current
from benchlib.children import child_main, run_child
from benchlib.flops import MatmulPeaks, model_flops
from benchlib.inputs import WORDS, make_inputs, pair_lengths, sentence
from benchlib.machine import loadavg, machine_info, versions
from benchlib.models import ALL_SHAPES, family, full_depth
from benchlib.ort_profile import OrtProfile
from benchlib.rerank.children import CHILDREN
from benchlib.rerank.plan import base_dtype, batching_study, check_targets, plan_backends, summarise
from benchlib.rerank.records import ONNX, REFERENCE, BackendPlan, BackendRow, Measured, RerankResult, RunMeta
from benchlib.rerank.report import markdown
from benchlib.results import Drift
from make_model import make_model

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORKDIR = BENCH_DIR / "out"
DTYPE_CHOICES = ("fp32", "fp16", "int8")


# ------------------------------------------------------------------------------------------------
# Compatibility: names memory_bench.py and load_bench.py import from here today. They are the
# shared benchlib functions; import those instead (benchmarks/README.md), then delete this block.
# ------------------------------------------------------------------------------------------------
_sentence, _versions, _machine, _WORDS, _artifact_stamp = sentence, versions, machine_info, WORDS, artifact_stamp


def _artifact_ok(artifact: Path, checkpoint: Path, dtype: str, validate: bool) -> bool:
    return is_current(artifact, checkpoint, dtype.split("-")[0], validate=validate)


def drift(scores: Sequence[float], reference: Sequence[float], k: int = 10) -> dict[str, float]:
    """``benchlib.results.Drift.of(...).to_dict()``: max_abs, spearman, top10_overlap."""
    return Drift.of(scores, reference, k).to_dict()


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(f"[rerank_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Setup:
    """What the command line asks for, resolved: rows to run, references, dtypes to export."""

    rows: list[BackendPlan]
    primary: str  # speed and memory ratios against this row
    drift_ref: str  # drift against this row
    dtypes: list[str]  # every dtype a row needs (fp32-eager: the v2 graph before fused attention)


def resolve_rows(args: argparse.Namespace, dtypes: list[str]) -> Setup:
    """The rows of this run after --skip-reference, --eager-row and --backends."""
    fam = family(args.shape)
    rows = plan_backends(fam, dtypes, args.device, batching=not args.no_batching, sweep=args.sweep_budgets)
    base_row = f"onnx-{base_dtype(args.device)}"
    if args.skip_reference:
        # ONNX rows among themselves (batching, budgets): ratios and drift against the base ONNX row.
        rows = [r for r in rows if r.kind != REFERENCE]
        if base_row not in {r.name for r in rows}:
            raise SystemExit(f"--skip-reference needs the {base_row} row (--dtypes must include it)")
        primary = drift_ref = base_row
    else:
        refs = [r.name for r in rows if r.kind == REFERENCE]
        primary = refs[0]  # speed and memory ratios: CrossEncoder (v1) / MxbaiRerankV2 (v2), fp16 on cuda
        drift_ref = next(n for n in refs if n.endswith("-fp32"))  # drift is always against torch fp32
    if args.eager_row and fam == "v2":
        dtypes = [*dtypes, "fp32-eager"]
        rows.insert(len(dtypes) - 1, BackendPlan("onnx-fp32-eager", ONNX, dtype="fp32-eager", batching="budget",
                                                 variant=True))
    if args.backends is not None:
        wanted = {b.strip() for b in args.backends.split(",")}
        unknown = wanted - {r.name for r in rows}
        if unknown:
            raise SystemExit(f"--backends: unknown {sorted(unknown)}; this run has {[r.name for r in rows]}")
        wanted |= {primary, drift_ref}
        rows = [r for r in rows if r.name in wanted]
    needed = [d for d in dtypes if any(r.dtype == d for r in rows)] or dtypes[:1]
    return Setup(rows=rows, primary=primary, drift_ref=drift_ref, dtypes=needed)


def export_all(checkpoint: Path, dtypes: Sequence[str], args: argparse.Namespace,
               tmp: Path) -> dict[str, ExportedArtifact]:
    """One artifact per dtype, reused from ``--workdir`` when current (``benchlib.artifacts``)."""
    out = {}
    for dtype in dtypes:
        artifact = args.workdir.resolve() / "artifacts" / f"{checkpoint.name}-{dtype}"

        def export(spec: dict[str, Any], dtype: str = dtype, artifact: Path = artifact) -> dict[str, Any]:
            _log(f"export {dtype} -> {artifact}")
            return run_child(Path(__file__), "export", spec, threads=args.threads, tmp=tmp)

        out[dtype] = ensure_artifact(checkpoint, artifact, dtype.split("-")[0], export=export,
                                     validate=args.validate, rebuild=args.rebuild,
                                     fused_attention=not dtype.endswith("-eager"))
    return out


def measure_rows(setup: Setup, artifacts: dict[str, ExportedArtifact], checkpoint: Path, common: dict[str, Any],
                 args: argparse.Namespace, tmp: Path) -> list[BackendRow]:
    """Run every row's child; the load average before each is kept with it."""
    rows = []
    for plan in setup.rows:
        _log(plan.name)
        spec = dict(common)
        if plan.kind == ONNX:
            assert plan.dtype is not None
            spec.update(artifact=artifacts[plan.dtype].path, batching=plan.batching,
                        max_batch_tokens=plan.budget or args.max_batch_tokens)
        else:
            spec.update(checkpoint=str(checkpoint), reference=plan.reference, torch_dtype=plan.torch_dtype)
        before = loadavg()
        measured = Measured(**run_child(Path(__file__), plan.kind, spec, threads=args.threads, tmp=tmp))
        rows.append(BackendRow(plan=plan, measured=measured, loadavg_before=before))
    return rows


def target_note(args: argparse.Namespace, n_layers: int, cut: bool, n_docs: int) -> str:
    """Where this run is not the condition the targets were set for (cut depth, fewer documents, threads)."""
    return "; ".join(([f"depth cut to {n_layers}"] if cut else [])
                     + ([f"{n_docs} documents, not 100"] if n_docs != 100 else [])
                     + ([f"{args.threads} threads, not 2"] if args.threads != 2 and args.device == "cpu" else []))


def run(args: argparse.Namespace, argv: list[str] | None) -> RerankResult:
    """Build or reuse the checkpoint and artifacts, measure every row, and derive the figures."""
    dtypes = [d.strip() for d in (args.dtypes or ("fp16" if args.device == "cuda" else "fp32,int8")).split(",")]
    bad = [d for d in dtypes if d not in DTYPE_CHOICES]
    if bad:
        raise SystemExit(f"--dtypes: unknown {bad}; choose from {', '.join(DTYPE_CHOICES)}")
    setup = resolve_rows(args, dtypes)
    workdir: Path = args.workdir.resolve()
    checkpoint = make_model(args.shape, workdir / "models" / (args.shape + (f"-L{args.layers}" if args.layers else "")),
                            layers=args.layers)
    config = json.loads((checkpoint / "config.json").read_text())
    loadavg_start, t_start = loadavg(), time.time()
    with tempfile.TemporaryDirectory(prefix="rerank_bench-") as tmp_name:
        tmp = Path(tmp_name)
        artifacts = export_all(checkpoint, setup.dtypes, args, tmp)
        query, docs, doc_tokens = make_inputs(checkpoint / "tokenizer.json", args.docs, args.seed)
        lengths = pair_lengths(Path(artifacts[setup.dtypes[0]].path), query, docs)
        _log("matmul peak")
        peaks = MatmulPeaks.from_dict(run_child(Path(__file__), "peak", {"threads": args.threads,
                                                                          "device": args.device},
                                                threads=args.threads, tmp=tmp))
        common = {"query": query, "docs": docs, "threads": args.threads, "device": args.device,
                  "batch_size": args.batch_size, "warmup": args.warmup, "repeats": args.repeats,
                  "max_batch_tokens": args.max_batch_tokens}
        rows = measure_rows(setup, artifacts, checkpoint, common, args, tmp)
        profiles = {}
        for dtype in (dtypes if args.profile else []):
            _log(f"profile onnx-{dtype}")
            profiles[dtype] = run_child(Path(__file__), "profile", {**common, "artifact": artifacts[dtype].path},
                                        threads=args.threads, tmp=tmp)

    flops = model_flops(config, lengths)
    summarise(rows, n_docs=len(docs), tokens=sum(lengths), flops=flops, peak=peaks.best, primary=setup.primary,
              drift_ref=setup.drift_ref)
    depth = full_depth(args.shape)
    cut = args.layers is not None and args.layers != depth
    ref_scores = np.asarray(next(r for r in rows if r.name == setup.drift_ref).measured.scores)
    meta = RunMeta(
        shape=args.shape, family=family(args.shape), device=args.device, threads=args.threads,
        num_hidden_layers=config["num_hidden_layers"], full_depth=depth, cut_depth=cut, n_docs=len(docs),
        seed=args.seed, batch_size=args.batch_size, repeats=args.repeats, warmup=args.warmup, query=query,
        doc_tokens=doc_tokens, row_tokens=lengths, total_tokens=sum(lengths), row_tokens_min=min(lengths),
        row_tokens_max=max(lengths), row_tokens_median=statistics.median(lengths), model_flops=flops,
        flops_formula=model_flops.__doc__ or "", primary_reference=setup.primary, drift_reference=setup.drift_ref,
        reference_score_std=float(np.std(ref_scores)),
        reference_score_range=[float(np.min(ref_scores)), float(np.max(ref_scores))],
        exports_validated=all(a.validated for a in artifacts.values()), artifacts=artifacts,
        checkpoint=str(checkpoint), loadavg_start=loadavg_start, loadavg_end=loadavg(),
        wall_s=time.time() - t_start, date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), machine=machine_info(),
        versions=versions(), command=" ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]))
    key = args.shape if args.device == "cpu" else f"{args.shape}@cuda"
    targets = [] if args.skip_reference else check_targets(
        key, rows, target_note(args, config["num_hidden_layers"], cut, len(docs)))
    return RerankResult(meta=meta, peaks=peaks, backends=rows,
                        batching=batching_study(rows, lengths, args.batch_size, args.device),
                        profiles={d: OrtProfile.from_dict(p) for d, p in profiles.items()}, targets=targets)


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--shape", choices=ALL_SHAPES, help="a released model's shape; tiny-v1/tiny-v2 for smoke runs")
    p.add_argument("--layers", type=int, default=None, help="cut depth (every table says so)")
    p.add_argument("--docs", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32, help="for every backend (the libraries' default)")
    p.add_argument("--dtypes", default=None, help="comma list; default fp32,int8 on cpu, fp16 on cuda")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--backends", default=None,
                   help="comma list of row names to run (e.g. onnx-fp32,torch-CrossEncoder-fp32); default all")
    p.add_argument("--no-batching", action="store_true", help="skip the token-budget vs fixed-size rows")
    p.add_argument("--eager-row", action="store_true",
                   help="v2: add onnx-fp32-eager, the graph with traced eager attention (before fused attention)")
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help="token budget for the onnx rows (default: MxbaiReranker's own default)")
    p.add_argument("--sweep-budgets", type=lambda v: [int(x) for x in v.split(",")], default=[],
                   help="extra onnx fp32 (cuda: fp16) rows at these max_batch_tokens, e.g. 2048,4096,8192")
    p.add_argument("--skip-reference", action="store_true",
                   help="ONNX rows only (batching/budget studies); ratios and drift against onnx-fp32")
    p.add_argument("--profile", action="store_true", help="also record onnxruntime per-op time per ONNX dtype")
    p.add_argument("--validate", action="store_true", help="validate exports against the reference (slower)")
    p.add_argument("--rebuild", action="store_true", help="re-export artifacts even if cached")
    p.add_argument("--seed", type=int, default=0, help="document sampling seed (the checkpoint uses seed 0)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="models/ and artifacts/ are cached here")
    p.add_argument("--json", type=Path, default=None, help="write the full result here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is None and args.shape is None:
        p.error("--shape is required")
    if args.repeats < 1 or args.warmup < 0 or args.docs < 1:
        p.error("--repeats and --docs must be >= 1, --warmup >= 0")
    return args


def _require_cuda() -> None:
    """Fail early and plainly: the CUDA path needs a GPU, onnxruntime-gpu and a CUDA build of torch."""
    import onnxruntime as ort

    problems = []
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        problems.append(f"onnxruntime {ort.__version__} offers no CUDAExecutionProvider "
                        f"(available: {ort.get_available_providers()}); install onnxruntime-gpu")
    try:
        import torch

        if not torch.cuda.is_available():
            problems.append(f"torch {torch.__version__} sees no CUDA device")
    except ImportError:
        problems.append("torch is not installed")
    if problems:
        raise SystemExit("--device cuda: no usable GPU here: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(CHILDREN, args.child)
    if args.device == "cuda":
        _require_cuda()
    result = run(args, argv)
    print(markdown(result))
    if args.json:
        result.write_json(args.json)
        _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
