"""Peak memory and time against document length (1K..32K tokens), ours against the torch references.

One query and one document of N tokens (the document is cut by the v2 prompt's own truncation to
fill ``max_length=N``), scored by each backend in a fresh subprocess, so every peak RSS is that
backend's alone (model included) and an ONNX process never imports torch:

- ``onnx``: MxbaiReranker on the fp32 artifact (GroupQueryAttention graph);
- ``onnx-eager``: the previous graph (traced eager attention, [L, L] per layer), for before/after;
- ``mxbai-rerank``: mxbai_rerank.MxbaiRerankV2 0.1.6 in fp32 (SDPA attention, full-vocabulary lm_head);
- ``torch-sdpa``: the untouched checkpoint's own forward (SDPA) on the reference's token ids, with only
  the (W["1"] - W["0"]) row of the lm_head: the reference where mxbai-rerank's [L, vocab] logits do not fit.

A watchdog stops a child above ``--mem-limit-gb`` (reported as "> limit"), so a reference that cannot
fit does not take the machine down. Every score is compared with the first reference that ran.

    python benchmarks/long_context_bench.py --shape base-v2 --lengths 1024,2048,4096,8192,16384,32768 \\
        --backends onnx,mxbai-rerank --json benchmarks/results/long-context-base-v2.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib.artifacts import child_export, ensure_artifact
from benchlib.children import run_watched
from benchlib.inputs import QUERY, long_document
from benchlib.machine import loadavg, peak_rss_bytes, thread_env
from benchlib.results import markdown_table, pick
from make_model import make_model

__all__ = ["BACKENDS", "QUERY", "Measurement", "format_table", "long_document", "main"]

BENCH_DIR = Path(__file__).resolve().parent
BACKENDS = ("onnx", "onnx-eager", "mxbai-rerank", "torch-sdpa")


@dataclass
class Measurement:
    """One backend on one length: what the child reported, or why it did not finish."""

    backend: str
    length: int
    status: str = "ok"
    tokens: int | None = None
    seconds: float | None = None
    peak_rss_gb: float | None = None
    score: float | None = None
    abs_diff: float | None = None
    diff_against: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def cell(self) -> str:
        if self.status != "ok":
            return self.status
        return f"{self.seconds:.1f} s, {self.peak_rss_gb:.2f} GB"


# -- children --------------------------------------------------------------------------------------
def _child(backend: str, model: str, length: int, threads: int) -> dict[str, Any]:
    document = long_document(length)
    if backend in ("onnx", "onnx-eager"):
        from mxbai_integrations import MxbaiReranker

        reranker = MxbaiReranker(model, max_length=length, intra_op_num_threads=threads, verify=False)
        tokens = len(reranker.encode(QUERY, [document])[0])
        reranker.score(QUERY, [long_document(64)])  # warm-up: session arenas, thread pool
        t0 = time.perf_counter()
        score = reranker.score(QUERY, [document])[0]
        return {"seconds": time.perf_counter() - t0, "score": score, "tokens": tokens}

    import torch
    from mxbai_rerank import MxbaiRerankV2

    torch.set_num_threads(threads)
    ref = MxbaiRerankV2(model, device="cpu", torch_dtype=torch.float32, max_length=length)
    inputs = ref.prepare_inputs([QUERY], [document])
    tokens = int(inputs["attention_mask"].sum())
    ref.predict([QUERY], [long_document(64)])  # warm-up, as for ONNX
    t0 = time.perf_counter()
    with torch.inference_mode():
        if backend == "mxbai-rerank":
            score = float(ref.predict([QUERY], [document]).item())
        else:
            # The untouched checkpoint's backbone (SDPA); only the "1" - "0" row of the tied lm_head.
            hidden = ref.model.model(**inputs).last_hidden_state[:, -1].float()
            weight = ref.model.get_output_embeddings().weight.float()
            yes, no = ref.tokenizer.convert_tokens_to_ids(["1", "0"])
            score = float(hidden[0] @ (weight[yes] - weight[no]))
    return {"seconds": time.perf_counter() - t0, "score": score, "tokens": tokens}


# -- parent ----------------------------------------------------------------------------------------
def run_child(backend: str, model: Path, length: int, *, threads: int, mem_limit_gb: float,
              timeout: float) -> Measurement:
    """One measurement in a fresh process, stopped above the memory limit or past the timeout."""
    result = Measurement(backend=backend, length=length)
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        cmd = [sys.executable, __file__, "--child", backend, "--model", str(model), "--length", str(length),
               "--threads", str(threads), "--child-out", out.name]
        env = {**thread_env(threads, tokenizers_parallelism=False), "PYTHONWARNINGS": "ignore"}
        run = run_watched(cmd, env=env, mem_limit_gb=mem_limit_gb, timeout=timeout)
        if run.status != "ok":
            result.status = run.status
            return result
        data = json.loads(Path(out.name).read_text())
    result.seconds, result.score, result.tokens = data["seconds"], data["score"], data["tokens"]
    result.peak_rss_gb = data["peak_rss_gb"]
    return result


def export_artifacts(checkpoint: Path, backends: list[str], workdir: Path) -> dict[str, Path]:
    """The fused (``onnx``) and eager-attention (``onnx-eager``) fp32 artifacts the run needs, reused when current."""
    paths = {}
    for backend, fused in (("onnx", True), ("onnx-eager", False)):
        if backend in backends:
            out = workdir / "artifacts" / f"{checkpoint.name}-{backend}-fp32"
            paths[backend] = Path(ensure_artifact(checkpoint, out, "fp32", export=child_export,
                                                  fused_attention=fused).path)
    return paths


def format_table(rows: list[Measurement], backends: list[str]) -> str:
    """One line per length: tokens, each backend's time and peak, ONNX's speed-up, the score difference."""
    lengths = sorted({r.length for r in rows})
    by = {(r.backend, r.length): r for r in rows}
    others = [b for b in backends if b != "onnx"]
    header = ["max_length", "tokens", *backends, *(f"onnx speed-up vs {b}" for b in others), "|diff| vs reference"]
    table = []
    for n in lengths:
        cells = [str(n), str(next((by[(b, n)].tokens for b in backends if (b, n) in by and by[(b, n)].tokens), "-"))]
        cells += [by[(b, n)].cell() if (b, n) in by else "-" for b in backends]
        ours = by.get(("onnx", n))
        for b in others:
            other = by.get((b, n))
            if ours and other and ours.status == other.status == "ok" and ours.seconds and other.seconds:
                cells.append(f"{other.seconds / ours.seconds:.2f}x")
            else:
                cells.append("-")
        cells.append(f"{ours.abs_diff:.2e} ({ours.diff_against})" if ours and ours.abs_diff is not None else "-")
        table.append(cells)
    return markdown_table(header, table)


def plot(runs: list[tuple[str, list[Measurement]]], path: Path) -> None:
    """Peak RSS against length, one panel per run (the load average in its title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6.0 * len(runs), 4.0), squeeze=False)
    for ax, (title, rows) in zip(axes[0], runs, strict=True):
        for backend in BACKENDS:
            pts = sorted((r.length, r.peak_rss_gb) for r in rows if r.backend == backend and r.status == "ok")
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=backend)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("document length (max_length, tokens)")
        ax.set_ylabel("peak RSS of the process (GB)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _title(shape: str, depth: int, threads: int, load: list[float] | None) -> str:
    return f"{shape} shape, {depth} layers, fp32, {threads} threads" + (f"; load avg {load[0]:.2f}" if load else "")


def _load_run(path: Path) -> tuple[str, list[Measurement]]:
    """A run written by ``--json`` (any version: unknown keys are ignored, missing ones default)."""
    data = json.loads(path.read_text())
    title = _title(data["shape"], data["layers"], data["threads"], data.get("loadavg_start"))
    return title, [pick(Measurement, row) for row in data["rows"]]


def measure(args: argparse.Namespace, backends: list[str], checkpoint: Path,
            artifacts: dict[str, Path]) -> list[Measurement]:
    """Every (length, backend) pair not skipped, each in its own watched process; ONNX diffs against a reference."""
    lengths = [int(x) for x in args.lengths.split(",")]
    skip = {tuple(s.split(":")) for s in args.skip.split(",") if s}
    rows: list[Measurement] = []
    for n in lengths:
        for backend in backends:
            if (backend, str(n)) in skip:
                rows.append(Measurement(backend=backend, length=n, status="not run"))
                continue
            m = run_child(backend, artifacts.get(backend, checkpoint), n, threads=args.threads,
                          mem_limit_gb=args.mem_limit_gb, timeout=args.timeout)
            rows.append(m)
            print(f"  {backend:13s} {n:6d}: {m.cell()}  score={m.score}", flush=True)
        refs = [r for r in rows if r.length == n and r.backend in ("mxbai-rerank", "torch-sdpa") and r.status == "ok"]
        for r in rows:
            if r.length == n and r.backend.startswith("onnx") and r.status == "ok" and refs:
                assert r.score is not None and refs[0].score is not None
                r.abs_diff, r.diff_against = abs(r.score - refs[0].score), refs[0].backend
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", default="base-v2", choices=("base-v2", "large-v2", "tiny-v2"))
    parser.add_argument("--layers", type=int, default=None, help="cut the depth (default: the real depth)")
    parser.add_argument("--lengths", default="1024,2048,4096,8192,16384,32768")
    parser.add_argument("--backends", default="onnx,mxbai-rerank")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mem-limit-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    parser.add_argument("--skip", default="", help="backend:length pairs not to run, e.g. mxbai-rerank:32768")
    parser.add_argument("--workdir", type=Path, default=BENCH_DIR / "out")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--plot-from", type=Path, nargs="+", default=None, metavar="JSON",
                        help="only draw --plot from earlier --json files (one panel each)")
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        data = _child(args.child, args.model, args.length, args.threads)
        data["peak_rss_gb"] = peak_rss_bytes() / 1024**3  # VmHWM of this fresh process
        Path(args.child_out).write_text(json.dumps(data))
        return 0
    if args.plot_from:
        plot([_load_run(p) for p in args.plot_from], args.plot or BENCH_DIR / "long_context.png")
        return 0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise SystemExit(f"--backends: unknown {unknown}; choose from {BACKENDS}")
    checkpoint = make_model(args.shape, args.workdir / "models" / (args.shape + (f"-L{args.layers}" if args.layers
                                                                                  else "")), layers=args.layers)
    artifacts = export_artifacts(checkpoint, backends, args.workdir)
    load_start = loadavg()
    rows = measure(args, backends, checkpoint, artifacts)
    load_end = loadavg()
    depth = json.loads((checkpoint / "config.json").read_text())["num_hidden_layers"]
    print(f"\n{_title(args.shape, depth, args.threads, None)}; load average at start {load_start}, "
          f"end {load_end}\n")
    print(format_table(rows, backends))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"shape": args.shape, "layers": depth, "threads": args.threads,
                                         "loadavg_start": load_start, "loadavg_end": load_end,
                                         "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    if args.plot:
        plot([(_title(args.shape, depth, args.threads, load_start), rows)], args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
