"""Work per request under hostile inputs: a 100 KB query over many documents, and 100,000 documents.

Each case runs in a fresh process (peak memory = VmHWM of that process), for the code in this
checkout and, with ``--before DIR``, for another checkout of the repository (e.g. a ``git worktree``
of an older commit), on the same artifact, so the before/after ratio comes from one run.

    git worktree add /tmp/before <commit>
    python benchmarks/hostile_inputs.py --artifact ARTIFACT --before /tmp/before

Prints a markdown table (seconds, peak MiB, and the ratio before/after) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchlib.machine import loadavg_text
from benchlib.results import markdown_table

REPO = Path(__file__).resolve().parent.parent

CASES = {
    "encode: 100 KB query x 100 one-word documents": "query_100kb",
    "score: 100,000 short documents": "many_documents",
}

# Runs inside the child process, against whichever checkout is first on sys.path. It reads VmHWM itself
# (as benchlib.machine.peak_rss_bytes does) because an older checkout has no benchlib to import.
CHILD = r"""
import json, sys, time
from mxbai_integrations import MxbaiReranker

case, artifact = sys.argv[1], sys.argv[2]
reranker = MxbaiReranker(artifact, providers=["CPUExecutionProvider"])
started = time.perf_counter()
if case == "query_100kb":
    query = "rivers and cities of europe " * 3700  # 100 KB
    out = reranker.encode(query, ["a"] * 100)
else:
    docs = [f"document {i} about rivers, bridges and the cities they cross" for i in range(100_000)]
    out = reranker.score("which rivers cross cities", docs)
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024, "n": len(out)}))
"""


def run(checkout: Path, case: str, artifact: Path) -> dict[str, float]:
    """One case in a fresh interpreter that imports ``mxbai_integrations`` from ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, case, str(artifact)], capture_output=True, text=True,
                          env=env, cwd=checkout, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{case} in {checkout} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cells(label: str, before: dict[str, float] | None, after: dict[str, float]) -> list[str]:
    ours = [f"{after['seconds']:.2f}", f"{after['peak_mib']:.0f}"]
    if before is None:
        return [label, "-", "-", *ours, "-", "-"]
    return [label, f"{before['seconds']:.2f}", f"{before['peak_mib']:.0f}", *ours,
            f"{before['seconds'] / after['seconds']:.1f}x", f"{before['peak_mib'] / after['peak_mib']:.1f}x"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", required=True, type=Path, help="a v1 artifact directory")
    parser.add_argument("--before", type=Path, default=None, help="another checkout to compare with")
    args = parser.parse_args(argv)
    rows = []
    for label, case in CASES.items():
        after = run(REPO, case, args.artifact)
        before = run(args.before, case, args.artifact) if args.before else None
        rows.append(_cells(label, before, after))
    print(f"{loadavg_text()} ({time.strftime('%Y-%m-%d %H:%M')})\n")
    print(markdown_table(["case", "before s", "before peak MiB", "after s", "after peak MiB", "time ratio",
                          "memory ratio"], rows, align="l" + ":r" * 6))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
