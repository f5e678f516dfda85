"""Load on ``mxbai-onnx serve``: N concurrent clients x M requests, with and without cross-request batching.

Loopback only, bounded in requests and in time. Every mode answers the same requests (20-100
documents each, fixed seed), and every answer is checked against ``MxbaiReranker.rank`` run
in-process on the same request alone: a score more than ``--atol`` away, or an order that is not
the reference's (ties within ``--atol`` aside), counts as a wrong score.

Rows of the table:
- ``in-process``: ``MxbaiReranker.rank`` on each request, one after the other, no HTTP (the floor);
- ``serve, one by one``: the server with ``--no-batching``: each request runs alone, in arrival order;
- ``serve, batched``: the server with cross-request batching (``--max-wait-ms``).

Each server is a fresh ``mxbai-onnx serve`` subprocess; the clients are one asyncio process
(httpx), closed loop: each client sends its next request when the previous one is answered.

    python benchmarks/load_bench.py --shape xsmall-v1 --layers 4 --json benchmarks/out/serve/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for _p in (REPO_ROOT, BENCH_DIR):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from make_model import SHAPES, make_model  # noqa: E402
from rerank_bench import _sentence, _versions  # noqa: E402

WORKDIR = BENCH_DIR / "out" / "serve"
QUERY_TOPICS = ("coffee health effects", "capital of france", "climate change energy market", "software network",
                "university student work", "history of europe", "music film culture", "ocean forest biology")


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Request:
    """One request of the workload (the same in every mode)."""

    client: int
    query: str
    documents: list[str]


@dataclass
class RunResult:
    """One row of the table: what a mode did with the workload."""

    name: str
    clients: int
    requests: int = 0
    documents: int = 0
    errors: int = 0
    wrong: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)
    mean_batch_requests: float | None = None
    tokens: int | None = None

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "latencies"}
        out.update(docs_per_s=self.docs_per_s, p50_s=self.percentile(50), p95_s=self.percentile(95),
                   p99_s=self.percentile(99))
        return out


# --------------------------------------------------------------------------------------------- workload
def make_workload(clients: int, per_client: int, min_docs: int, max_docs: int, max_sentences: int,
                  seed: int) -> list[Request]:
    """Requests of ``min_docs``..``max_docs`` documents of 1..``max_sentences`` sentences (6-18 words each)."""
    from rerank_bench import _WORDS

    rng = random.Random(seed)
    out = []
    for c in range(clients):
        for _ in range(per_client):
            query = f"{rng.choice(QUERY_TOPICS)} {' '.join(rng.choice(_WORDS) for _ in range(3))}"
            n_docs = rng.randint(min_docs, max_docs)
            docs = [" ".join(_sentence(rng) for _ in range(rng.randint(1, max_sentences))) for _ in range(n_docs)]
            out.append(Request(client=c, query=query, documents=docs))
    return out


def ensure_artifact(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return Path(args.model)
    name = f"{args.shape}" + (f"-L{args.layers}" if args.layers else "")
    artifact = WORKDIR / "artifacts" / f"{name}-fp32"
    if (artifact / "mxbai_onnx.json").is_file():
        return artifact
    checkpoint = make_model(args.shape, WORKDIR / "models" / name, layers=args.layers)
    subprocess.run([sys.executable, "-m", "mxbai_integrations.cli", "export", str(checkpoint), str(artifact),
                    "-q", "--force"], check=True)
    return artifact


# ------------------------------------------------------------------------------------------ correctness
def is_wrong(results: list[dict[str, Any]], reference: list[float], atol: float) -> bool:
    """Scores off by more than ``atol``, a missing document, or an order the reference disagrees with."""
    if sorted(r["index"] for r in results) != list(range(len(reference))):
        return True
    if any(abs(r["relevance_score"] - reference[r["index"]]) > atol for r in results):
        return True
    ref = [reference[r["index"]] for r in results]
    return any(b > a + 2 * atol for a, b in zip(ref, ref[1:], strict=False))


# ------------------------------------------------------------------------------------------------ modes
def run_in_process(artifact: Path, workload: list[Request], time_limit: float) -> tuple[RunResult, list[list[float]]]:
    from mxbai_integrations import MxbaiReranker

    reranker = MxbaiReranker(artifact)
    reranker.score(workload[0].query, workload[0].documents[:8])  # warm-up
    result = RunResult("in-process MxbaiReranker.rank, one by one", clients=1)
    scores: list[list[float]] = []
    started = time.perf_counter()
    for request in workload:  # the reference scores: every request, even past the time limit
        t = time.perf_counter()
        ranked = reranker.rank(request.query, request.documents)
        scores.append([s for _, s in sorted((r.index, r.score) for r in ranked)])
        if time.perf_counter() - started <= time_limit:
            result.latencies.append(time.perf_counter() - t)
            result.requests += 1
            result.documents += len(request.documents)
    result.seconds = sum(result.latencies)
    return result, scores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(artifact: Path, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mxbai_integrations.cli", "serve", str(artifact),
                             "--port", str(port), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become healthy in 120 s")


_COUNTERS = ("mxbai_rerank_batch_requests_sum", "mxbai_rerank_batch_requests_count", "mxbai_rerank_tokens_total")


def read_counters(url: str) -> dict[str, float]:
    """The server's own counters: requests per model pass (sum, count) and tokens scored."""
    import httpx

    out = dict.fromkeys(_COUNTERS, 0.0)
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in out:
            out[parts[0]] = float(parts[1])
    return out


async def _load(url: str, workload: list[Request], reference: list[list[float]], result: RunResult,
                time_limit: float, atol: float) -> None:
    import httpx

    by_client: dict[int, list[int]] = {}
    for i, request in enumerate(workload):
        by_client.setdefault(request.client, []).append(i)
    deadline = time.perf_counter() + time_limit
    limits = httpx.Limits(max_connections=result.clients, max_keepalive_connections=result.clients)

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def one_client(indexes: list[int]) -> None:
            for i in indexes:
                if time.perf_counter() > deadline:
                    return
                request = workload[i]
                t = time.perf_counter()
                try:
                    response = await client.post("/v2/rerank", json={"query": request.query,
                                                                     "documents": request.documents})
                    status = response.status_code
                    body = response.json()
                except Exception as exc:  # a benchmark counts failures, it does not stop at the first
                    status, body = type(exc).__name__, None
                result.latencies.append(time.perf_counter() - t)
                result.requests += 1
                if status != 200:
                    result.errors += 1
                    result.error_kinds[str(status)] = result.error_kinds.get(str(status), 0) + 1
                    continue
                result.documents += len(request.documents)
                if is_wrong(body["results"], reference[i], atol):
                    result.wrong += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client(ix) for ix in by_client.values()))
        result.seconds = time.perf_counter() - started


def run_server_mode(name: str, artifact: Path, extra: list[str], workload: list[Request],
                    reference: list[list[float]], *, clients: int, time_limit: float, atol: float) -> RunResult:
    import httpx

    proc, url = start_server(artifact, extra)
    try:
        warm = workload[0]
        for _ in range(2):
            httpx.post(f"{url}/v2/rerank", json={"query": warm.query, "documents": warm.documents[:16]}, timeout=120)
        before = read_counters(url)
        result = RunResult(name, clients=clients)
        asyncio.run(_load(url, workload, reference, result, time_limit, atol))
        after = read_counters(url)
        passes = after["mxbai_rerank_batch_requests_count"] - before["mxbai_rerank_batch_requests_count"]
        if passes:
            result.mean_batch_requests = (after["mxbai_rerank_batch_requests_sum"]
                                          - before["mxbai_rerank_batch_requests_sum"]) / passes
        result.tokens = int(after["mxbai_rerank_tokens_total"] - before["mxbai_rerank_tokens_total"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


# ---------------------------------------------------------------------------------------------- report
def table(rows: list[RunResult], baseline: RunResult) -> str:
    lines = ["| mode | clients | requests | documents | errors | wrong scores | docs/s | vs one by one | "
             "p50 s | p95 s | p99 s | requests per model pass |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = r.docs_per_s / baseline.docs_per_s if baseline.docs_per_s else float("nan")
        per_pass = f"{r.mean_batch_requests:.2f}" if r.mean_batch_requests is not None else "-"
        lines.append(f"| {r.name} | {r.clients} | {r.requests} | {r.documents:,} | {r.errors} | {r.wrong} | "
                     f"{r.docs_per_s:,.1f} | {ratio:.2f}x | {r.percentile(50):.3f} | {r.percentile(95):.3f} | "
                     f"{r.percentile(99):.3f} | {per_pass} |")
    return "\n".join(lines)


def targets(batched: RunResult, single: RunResult) -> list[tuple[str, str, bool]]:
    ratio = batched.docs_per_s / single.docs_per_s if single.docs_per_s else 0.0
    p99, p50 = batched.percentile(99), single.percentile(50)
    return [
        ("batched docs/s >= 1.3x one by one", f"{ratio:.2f}x", ratio >= 1.3),
        ("batched p99 < 2x p50 of one by one", f"{p99:.3f} s vs 2 x {p50:.3f} s = {2 * p50:.3f} s", p99 < 2 * p50),
        ("0 errors", f"{batched.errors} batched, {single.errors} one by one", batched.errors == single.errors == 0),
        ("0 wrong scores", f"{batched.wrong} batched, {single.wrong} one by one", batched.wrong == single.wrong == 0),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="artifact directory (default: build --shape/--layers)")
    parser.add_argument("--shape", default="xsmall-v1", choices=SHAPES)
    parser.add_argument("--layers", type=int, default=4, help="cut depth of the built model (0: full depth)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=6, help="requests per client")
    parser.add_argument("--min-docs", type=int, default=20)
    parser.add_argument("--max-docs", type=int, default=100)
    parser.add_argument("--max-sentences", type=int, default=2, help="sentences per document at most")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per mode at most")
    parser.add_argument("--atol", type=float, default=1e-3, help="score tolerance (DESIGN.md: 1e-3 with padding)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.layers = args.layers or None

    artifact = ensure_artifact(args)
    workload = make_workload(args.clients, args.requests, args.min_docs, args.max_docs, args.max_sentences,
                             args.seed)
    load_start = os.getloadavg()
    print(f"artifact {artifact}; {len(workload)} requests, {sum(len(r.documents) for r in workload):,} documents; "
          f"load average {load_start}", file=sys.stderr)
    in_process, reference = run_in_process(artifact, workload, args.time_limit)
    print("in-process done", file=sys.stderr)
    single = run_server_mode("serve, one by one (--no-batching)", artifact, ["--no-batching"], workload, reference,
                             clients=args.clients, time_limit=args.time_limit, atol=args.atol)
    print("one by one done", file=sys.stderr)
    batched = run_server_mode(f"serve, cross-request batching (--max-wait-ms {args.max_wait_ms:g})", artifact,
                              ["--max-wait-ms", str(args.max_wait_ms)], workload, reference,
                              clients=args.clients, time_limit=args.time_limit, atol=args.atol)
    load_end = os.getloadavg()
    rows = [in_process, single, batched]
    print(table(rows, single))
    print()
    print("| target | measured | met |\n|---|---|:---:|")
    for what, measured, ok in targets(batched, single):
        print(f"| {what} | {measured} | {'yes' if ok else 'no'} |")
    tokens = [r.tokens for r in rows if r.tokens]
    if tokens:
        print(f"\n{tokens[0] / max(1, rows[1].documents):.0f} tokens per (query, document) row on average "
              "(the server's own count, template and special tokens included)")
    print(f"\nload average at start {tuple(round(x, 2) for x in load_start)}, "
          f"end {tuple(round(x, 2) for x in load_end)}; {os.cpu_count()} logical CPUs")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "artifact": str(artifact), "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [r.summary() for r in rows],
            "targets": [{"target": w, "measured": m, "met": ok} for w, m, ok in targets(batched, single)],
            "load_average": {"start": load_start, "end": load_end}, "versions": _versions(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
