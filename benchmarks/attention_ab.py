"""Fused (GroupQueryAttention) against eager attention on the 100-document mix, alternating in one process.

``rerank_bench.py --eager-row`` runs the two graphs one after the other, so on a busy machine a change
of load between the rows decides the ratio. Here both sessions stay loaded and the timed calls
alternate (fused, eager, fused, eager, ...), which is the fair comparison on a shared machine.

    python benchmarks/attention_ab.py --fused benchmarks/out/artifacts/base-v2-fp32 \\
        --eager benchmarks/out/artifacts/base-v2-fp32-eager --repeats 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchlib.inputs import make_inputs
from benchlib.machine import loadavg
from benchlib.results import markdown_table
from benchlib.timing import Timing

BENCH_DIR = Path(__file__).resolve().parent
ARMS = ("fused", "eager")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fused", type=Path, required=True, help="artifact exported with fused attention")
    parser.add_argument("--eager", type=Path, required=True, help="artifact exported with fused_attention=False")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer.json the documents are measured with (default: the fused artifact's)")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from mxbai_integrations import MxbaiReranker

    query, docs, _ = make_inputs(args.tokenizer or args.fused / "tokenizer.json", args.docs, 0)
    rerankers = {name: MxbaiReranker(path, intra_op_num_threads=args.threads, verify=False)
                 for name, path in zip(ARMS, (args.fused, args.eager), strict=True)}
    for reranker in rerankers.values():
        reranker.score(query, docs[:4])  # warm-up
    load_start = loadavg()
    times: dict[str, list[float]] = {name: [] for name in rerankers}
    scores = {}
    for _ in range(args.repeats):
        for name, reranker in rerankers.items():
            t0 = time.perf_counter()
            scores[name] = reranker.score(query, docs)
            times[name].append(time.perf_counter() - t0)
    diff = max(abs(a - b) for a, b in zip(scores["fused"], scores["eager"], strict=True))
    timing = {name: Timing(times[name]) for name in ARMS}
    eager = timing["eager"].median_s
    print(markdown_table(["graph", "runs (s)", "median s", "eager/fused"],
                         [[name, ", ".join(f"{t:.1f}" for t in times[name]), f"{timing[name].median_s:.1f}",
                           f"{eager / timing[name].median_s:.2f}x"] for name in ARMS], align="l:l:r:r"))
    print(f"\nmax abs score diff fused vs eager: {diff:.2e}; load average at start {load_start}, end {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
