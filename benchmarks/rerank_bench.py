"""Speed, memory and drift of MxbaiReranker (ONNX Runtime) against the PyTorch references, in one run.

One query over N documents (lengths drawn from 30..500 tokens, skewed short, fixed seed) is
ranked by every backend: the ONNX artifacts (fp32 / int8 / fp16) through ``MxbaiReranker.rank``
and the libraries users would otherwise serve with (sentence-transformers ``CrossEncoder`` and
``mxbai_rerank.MxbaiRerankV1`` for v1, ``mxbai_rerank.MxbaiRerankV2`` for v2), same threads.
Each backend runs in a fresh subprocess so its peak RSS is its own and an ONNX process never
imports torch; the parent only orchestrates, compares scores and prints the tables.

    python benchmarks/rerank_bench.py --shape xsmall-v1 --json benchmarks/out/xsmall-v1.json

Model FLOPs (``model_flops``) are counted on the real (unpadded) tokens, so padding and the
reference's full-vocabulary lm_head count as waste against the backend that does them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from make_model import SHAPES, family, make_model  # noqa: E402

DEFAULT_WORKDIR = BENCH_DIR / "out"
MIN_DOC_TOKENS, MAX_DOC_TOKENS = 30, 500
# Beta(1.2, 3.0) on [30, 500]: mode near 70 tokens, mean ~165, a long tail up to 500.
LENGTH_BETA = (1.2, 3.0)
QUERY = "what are the long term health effects of drinking coffee every day"
PEAK_N = 2048
GPU_PEAK_N = 8192
HUGE_BUDGET = 1 << 40
TOP_K_OVERLAP = 10
TARGETS: dict[str, list[dict[str, Any]]] = {
    # From issue 5; checked against the row named in "row", ratios against the primary reference.
    "xsmall-v1": [
        {"row": "onnx-fp32", "metric": "speedup", "min": 2.0, "what": "fp32 rank() >= 2x CrossEncoder"},
        {"row": "onnx-int8", "metric": "speedup", "min": 3.5, "what": "int8 rank() >= 3.5x CrossEncoder"},
        {"row": "onnx-int8", "metric": "top10_overlap", "min": 0.9, "what": "int8 top-10 overlap >= 0.9"},
        {"row": "onnx-int8", "metric": "spearman", "min": 0.98, "what": "int8 Spearman >= 0.98"},
    ],
    "base-v2": [
        {"row": "onnx-fp32", "metric": "speedup", "min": 2.5, "what": "fp32 rank() >= 2.5x MxbaiRerankV2"},
        {"row": "onnx-fp32", "metric": "mem_ratio", "min": 4.0, "what": "fp32 peak RSS >= 4x smaller"},
    ],
    "large-v2@cuda": [
        {"row": "onnx-fp16", "metric": "latency_median_s", "max": 0.25, "what": "large-v2 fp16 < 0.25 s/query"},
        {"row": "onnx-fp16", "metric": "speedup", "min": 2.0, "what": "fp16 >= 2x the PyTorch reference"},
    ],
}

# A plain vocabulary so documents read like text to the tokenizer; token counts are measured with
# the checkpoint's own tokenizer, never assumed from word counts.
_WORDS = (
    "the a of to and in is for on with as by that this from at be are was it or an which not have has "
    "search query document relevance ranking retrieval model score answer question result study report "
    "coffee tea water health heart blood sleep caffeine risk disease cancer liver brain memory effect "
    "people adults children women men patients doctors researchers scientists group trial data evidence "
    "daily morning evening week month year years long short term high low more less most many some "
    "increase decrease reduce improve protect cause linked associated higher lower moderate heavy light "
    "city river mountain ocean forest country history science physics chemistry biology medicine food "
    "energy climate money market company product software code function system network computer phone "
    "paris france capital berlin london tokyo madrid rome europe asia america africa world national "
    "music art film book story language culture school university student teacher work job family home "
    "new old large small good bad best fast slow early late important different common possible recent "
    "according however although because while during after before between among within without about "
    "said found showed suggested reported measured compared observed estimated published reviewed"
).split()


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------
def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
    if rng.random() < 0.15:
        words.insert(rng.randrange(len(words)), str(rng.randint(2, 2024)))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", ",", ";", "!", "?"])


def make_inputs(tokenizer_json: Path, n_docs: int, seed: int) -> tuple[str, list[str], list[int]]:
    """One query and ``n_docs`` documents whose token counts (no special tokens) hit drawn targets.

    Returns (query, documents, document token counts as measured by the tokenizer).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    # Lengths from their own generator, so every tokenizer gets the same length mix for a seed.
    len_rng, rng = random.Random(seed), random.Random(seed + 1)
    targets = [MIN_DOC_TOKENS + round((MAX_DOC_TOKENS - MIN_DOC_TOKENS) * len_rng.betavariate(*LENGTH_BETA))
               for _ in range(n_docs)]
    docs, counts = [], []
    for target in targets:
        text = ""
        while len(tok.encode(text, add_special_tokens=False).ids) < target + 8:
            text = (text + " " + _sentence(rng)).strip()
        enc = tok.encode(text, add_special_tokens=False)
        # Cut at the character end of token `target`, then step back until the prefix re-tokenizes
        # to at most `target` tokens (a cut can merge or split a token at the boundary).
        end = enc.offsets[target - 1][1]
        cut = text[:end].rstrip()
        while len(tok.encode(cut, add_special_tokens=False).ids) > target:
            cut = cut[:-1].rstrip()
        docs.append(cut)
        counts.append(len(tok.encode(cut, add_special_tokens=False).ids))
    return QUERY, docs, counts


def pair_lengths(artifact_dir: Path, query: str, docs: Sequence[str]) -> list[int]:
    """Tokens per (query, document) row exactly as MxbaiReranker feeds them (template, truncation)."""
    from tokenizers import Tokenizer

    from mxbai_integrations.artifact import TOKENIZER_NAME, read_manifest
    from mxbai_integrations.prompt import V1PairEncoder, V2PromptEncoder

    manifest = read_manifest(artifact_dir)
    tok = Tokenizer.from_file(str(artifact_dir / TOKENIZER_NAME))
    if manifest.family == "v1":
        rows = V1PairEncoder(tok, manifest.max_length).encode(query, docs)
    else:
        assert manifest.prompt is not None
        rows = V2PromptEncoder(tok, manifest.prompt, manifest.max_length).encode(query, docs)
    return [len(r) for r in rows]


# ------------------------------------------------------------------------------------------------
# FLOPs and score drift
# ------------------------------------------------------------------------------------------------
def model_flops(config: dict[str, Any], lengths: Sequence[int]) -> float:
    """Forward FLOPs (2 per multiply-add) over unpadded rows of the given token lengths.

    Per row of n tokens, L layers, hidden d, MLP width f:
      v1 (DeBERTa-v2): L * [2n(4d^2 + 2df) + 4n^2 d + 8nPd] + 2d^2 + 2d, where 4d^2 is Q/K/V/O,
        4n^2 d is QK^T and AV, and 8nPd the disentangled c2p and p2c scores against the 2P relative
        position embeddings (P = position_buckets); the relative-embedding projections (once per
        batch), layer norms, softmax and GELU are left out (< 2%). 2d^2 + 2d is the pooler and head.
      v2 (Qwen2, GQA): L * [2n(2d^2 + 2d*d_kv + 3df) + 4n^2 d] + 2d, with d_kv = kv_heads * head_dim
        (K and V are narrow), 3df the SwiGLU MLP, 4n^2 d the full square of QK^T and AV as dense
        kernels compute it (causal masking would halve it), 2d the one-row score head. The full
        151,936-wide lm_head the reference applies at every position (2*n*d*V) is not model work.
    """
    d, n_layers, f = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    total = 0.0
    if config.get("model_type") == "deberta-v2":
        buckets = config.get("position_buckets", 256)
        span = buckets if buckets > 0 else config.get("max_position_embeddings", 512)
        n_pos = len(config.get("pos_att_type") or []) if config.get("relative_attention") else 0
        for n in lengths:
            per_layer = 2 * n * (4 * d * d + 2 * d * f) + 4 * n * n * d + n_pos * 2 * n * (2 * span) * d
            total += n_layers * per_layer + 2 * d * d + 2 * d
        return total
    heads = config["num_attention_heads"]
    d_kv = config.get("num_key_value_heads", heads) * (d // heads)
    for n in lengths:
        per_layer = 2 * n * (2 * d * d + 2 * d * d_kv + 3 * d * f) + 4 * n * n * d
        total += n_layers * per_layer + 2 * d
    return total


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata, without scipy."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def drift(scores: Sequence[float], reference: Sequence[float], k: int = TOP_K_OVERLAP) -> dict[str, float]:
    """Max abs difference, Spearman rank correlation and top-k overlap of two score vectors.

    Ranks are taken at float32, the references' output precision: a v1 sigmoid saturates to 1.0
    in float32 (logit > ~17), and a float64 score would break ties the reference cannot see.
    """
    a, b = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    max_abs = float(np.max(np.abs(a - b)))
    a, b = a.astype(np.float32), b.astype(np.float32)
    ra, rb = rankdata(a), rankdata(b)
    sa, sb = ra.std(), rb.std()
    spearman = float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb)) if sa > 0 and sb > 0 else 1.0
    k = min(k, len(a))
    top_a = set(np.argsort(-a, kind="mergesort")[:k].tolist())
    top_b = set(np.argsort(-b, kind="mergesort")[:k].tolist())
    return {"max_abs": max_abs, "spearman": spearman,
            "top10_overlap": len(top_a & top_b) / k if k else 1.0}


# ------------------------------------------------------------------------------------------------
# Child processes (each backend alone, so peak RSS is its own)
# ------------------------------------------------------------------------------------------------
def _peak_rss_bytes() -> int:
    """VmHWM of this process image; ru_maxrss would carry the parent's high-water mark across exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a later peak covers serving only, not loading."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _gpu_mem_of_pid(pid: int) -> int | None:
    """GPU memory nvidia-smi attributes to ``pid`` (bytes): what ORT's arena or torch's cache hold now."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            return int(float(parts[1])) * 1024 * 1024
    return None


def _time_calls(fn: Callable[[], list[float]], warmup: int, repeats: int) -> tuple[list[float], list[float]]:
    """Run ``fn`` warm-up + repeats times; return the timed latencies and the last scores."""
    scores: list[float] = []
    _SERVE_PEAK["load"] = _peak_rss_bytes()
    _SERVE_PEAK["reset"] = _reset_peak_rss()
    for _ in range(warmup):
        scores = fn()
    latencies = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        scores = fn()
        latencies.append(time.perf_counter() - t0)
    return latencies, scores


_SERVE_PEAK: dict[str, Any] = {}


def _memory_record() -> dict[str, Any]:
    """Process peak RSS (load included) and, where the kernel allows a reset, the peak while ranking."""
    now = _peak_rss_bytes()
    if _SERVE_PEAK.get("reset"):
        return {"peak_rss": max(now, _SERVE_PEAK["load"]), "peak_rss_load": _SERVE_PEAK["load"],
                "peak_rss_serving": now, "rss_end": _rss_bytes()}
    return {"peak_rss": now, "peak_rss_load": None, "peak_rss_serving": None, "rss_end": _rss_bytes()}


def _scores_from_rank(results: Sequence[Any], n: int, index: str = "index", score: str = "score") -> list[float]:
    """Input-order scores from a rank() result list (objects or dicts)."""
    out = [math.nan] * n
    for r in results:
        i = r[index] if isinstance(r, dict) else getattr(r, index)
        s = r[score] if isinstance(r, dict) else getattr(r, score)
        out[int(i)] = float(s)
    return out


def child_onnx(spec: dict[str, Any]) -> dict[str, Any]:
    """Time MxbaiReranker.rank on one artifact; ``batching`` picks the batch plan under test."""
    from mxbai_integrations import MxbaiReranker

    rss_imports = _rss_bytes()

    query, docs, bs, threads = spec["query"], spec["docs"], spec["batch_size"], spec["threads"]
    providers = ["CUDAExecutionProvider"] if spec["device"] == "cuda" else ["CPUExecutionProvider"]
    batching = spec["batching"]
    # The reranker's own session defaults are what users get, so only the thread count is set here.
    kw: dict[str, Any] = {"intra_op_num_threads": threads}
    if spec.get("max_batch_tokens"):
        kw["max_batch_tokens"] = spec["max_batch_tokens"]
    if batching != "budget":
        # No token cap: "sorted" is length-sorted fixed-size batches, "fixed" feeds input-order slices.
        kw["max_batch_tokens"] = HUGE_BUDGET
    t0 = time.perf_counter()
    reranker = MxbaiReranker(spec["artifact"], providers=providers, batch_size=bs, verify=False, **kw)
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_bytes()

    if batching == "fixed":
        def call() -> list[float]:
            # score() on one slice of batch_size rows is exactly one batch padded to its longest row.
            scores: list[float] = []
            for s in range(0, len(docs), bs):
                scores.extend(reranker.score(query, docs[s: s + bs], batch_size=bs))
            _ = sorted(range(len(scores)), key=lambda i: (-scores[i], i))  # the sort rank() adds
            return scores
    else:
        def call() -> list[float]:
            return _scores_from_rank(reranker.rank(query, docs, return_documents=False), len(docs))

    latencies, scores = _time_calls(call, spec["warmup"], spec["repeats"])
    out = {"load_s": load_s, "latencies_s": latencies, "scores": scores, "rss_after_imports": rss_imports,
           "rss_after_load": rss_loaded, **_memory_record(), "providers": reranker.providers,
           "session_threads": threads, "max_batch_tokens": reranker.max_batch_tokens}
    if spec["device"] == "cuda":
        out["gpu_mem_process"] = _gpu_mem_of_pid(os.getpid())
    return out


def child_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """onnxruntime's per-op profile of one rank() call after a warm-up: where the time goes."""
    import onnxruntime as ort

    from mxbai_integrations import MxbaiReranker

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = spec["threads"]
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(spec["result_path"]).with_suffix(""))
    providers = ["CUDAExecutionProvider"] if spec["device"] == "cuda" else ["CPUExecutionProvider"]
    kw = {"max_batch_tokens": spec["max_batch_tokens"]} if spec.get("max_batch_tokens") else {}
    reranker = MxbaiReranker(spec["artifact"], providers=providers, batch_size=spec["batch_size"],
                             session_options=so, verify=False, **kw)
    reranker.rank(spec["query"], spec["docs"], return_documents=False)
    t0 = time.perf_counter()
    reranker.rank(spec["query"], spec["docs"], return_documents=False)
    wall = time.perf_counter() - t0
    # No public handle on the session; the profile is a benchmark-only need.
    trace = Path(reranker._session.end_profiling())
    by_op: dict[str, list[float]] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            acc = by_op.setdefault(op, [0.0, 0])
            acc[0] += event.get("dur", 0)
            acc[1] += 1
    trace.unlink()
    total = sum(v[0] for v in by_op.values())
    # Both calls are in the trace; halve to get one call's kernel time.
    ops: list[tuple[str, float, float, int]] = sorted(
        ((op, us / 2e6, us / total if total else 0.0, int(n) // 2) for op, (us, n) in by_op.items()),
        key=lambda x: -x[1])
    return {"wall_s": wall, "kernel_s": total / 2e6, "ops": ops}


def child_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """Time the PyTorch reference library's own rank() on the checkpoint."""
    import torch

    torch.set_num_threads(spec["threads"])
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[spec["torch_dtype"]]
    device, path, query, docs, bs = spec["device"], spec["checkpoint"], spec["query"], spec["docs"], spec["batch_size"]
    kind = spec["reference"]
    if kind == "crossencoder":
        from sentence_transformers import CrossEncoder

        rss_imports = _rss_bytes()
        t0 = time.perf_counter()
        model: Any = CrossEncoder(path, device=device, model_kwargs={"dtype": dtype})

        def call() -> list[float]:
            res = model.rank(query, docs, batch_size=bs, return_documents=False, show_progress_bar=False)
            return _scores_from_rank(res, len(docs), index="corpus_id")
    else:
        from mxbai_rerank import MxbaiRerankV1, MxbaiRerankV2

        rss_imports = _rss_bytes()
        t0 = time.perf_counter()
        cls = MxbaiRerankV1 if kind == "mxbai-v1" else MxbaiRerankV2
        model = cls(path, device=device, torch_dtype=dtype)

        def call() -> list[float]:
            res = model.rank(query, docs, top_k=len(docs), batch_size=bs, return_documents=False)
            return _scores_from_rank(res, len(docs))
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_bytes()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    latencies, scores = _time_calls(call, spec["warmup"], spec["repeats"])
    out: dict[str, Any] = {"load_s": load_s, "latencies_s": latencies, "scores": scores,
                           "rss_after_imports": rss_imports, "rss_after_load": rss_loaded, **_memory_record(),
                           "torch_threads": torch.get_num_threads()}
    if device == "cuda":
        out["gpu_max_allocated"] = int(torch.cuda.max_memory_allocated())
        out["gpu_max_reserved"] = int(torch.cuda.max_memory_reserved())
        out["gpu_mem_process"] = _gpu_mem_of_pid(os.getpid())
    return out


def _best_time(fn: Callable[[], Any], runs: int) -> float:
    fn()
    best = math.inf
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _ort_matmul_session(n: int, threads: int, provider: str, fp16: bool) -> Any:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    np_dtype, onnx_dtype = (np.float16, TensorProto.FLOAT16) if fp16 else (np.float32, TensorProto.FLOAT)
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np_dtype), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "W"], ["Y"])], "peak",
                              [helper.make_tensor_value_info("A", onnx_dtype, [n, n])],
                              [helper.make_tensor_value_info("Y", onnx_dtype, [n, n])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=[provider]), np_dtype, onnx


def child_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """Matmul FLOP/s this process reaches with the same threads: the ceiling for 'achieved' figures."""
    threads, device = spec["threads"], spec["device"]
    out: dict[str, Any] = {}
    if device == "cpu":
        n = PEAK_N
        flops = 2.0 * n**3
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
        try:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=threads):
                out["numpy_fp32"] = flops / _best_time(lambda: a @ b, 5)
        except ImportError:
            out["numpy_fp32"] = flops / _best_time(lambda: a @ b, 5)
        sess, _, _ = _ort_matmul_session(n, threads, "CPUExecutionProvider", fp16=False)
        out["ort_fp32"] = flops / _best_time(lambda: sess.run(None, {"A": a}), 5)
        try:
            import torch

            torch.set_num_threads(threads)
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            out["torch_fp32"] = flops / _best_time(lambda: ta @ tb, 5)
        except ImportError:
            pass
        out["size"] = n
        return out
    import onnxruntime as ort
    import torch

    n = GPU_PEAK_N
    flops = 2.0 * n**3
    for name, dt in (("torch_fp16", torch.float16), ("torch_bf16", torch.bfloat16)):
        ta = torch.randn(n, n, device="cuda", dtype=dt)
        tb = torch.randn(n, n, device="cuda", dtype=dt)

        def mm(x: Any = ta, y: Any = tb) -> None:
            x @ y
            torch.cuda.synchronize()

        out[name] = flops / _best_time(mm, 10)
    sess, np_dtype, _ = _ort_matmul_session(n, 1, "CUDAExecutionProvider", fp16=True)
    a_dev = ort.OrtValue.ortvalue_from_numpy(np.random.default_rng(0).standard_normal((n, n)).astype(np_dtype),
                                             "cuda", 0)
    binding = sess.io_binding()
    binding.bind_ortvalue_input("A", a_dev)
    binding.bind_output("Y", "cuda")

    def ort_mm() -> None:
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()

    out["ort_fp16"] = flops / _best_time(ort_mm, 10)
    out["size"] = n
    out["gpu_name"] = torch.cuda.get_device_name(0)
    return out


def child_export(spec: dict[str, Any]) -> dict[str, Any]:
    """Export one dtype (torch is imported here, never in the parent)."""
    from onnx_export import export_model

    t0 = time.perf_counter()
    out = export_model(spec["checkpoint"], spec["artifact"], dtype=spec["dtype"], validate=spec["validate"],
                       force=True, progress=False, fused_attention=spec.get("fused_attention", True))
    manifest = json.loads((Path(out) / "mxbai_onnx.json").read_text())
    return {"export_s": time.perf_counter() - t0, "validation": manifest.get("validation", {}),
            "created_with": manifest.get("created_with", {})}


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "onnx": child_onnx, "profile": child_profile, "reference": child_reference, "peak": child_peak,
    "export": child_export,
}


def run_child(kind: str, spec: dict[str, Any], *, threads: int, tmp: Path, timeout: float | None = None
              ) -> dict[str, Any]:
    """Run one child in a fresh interpreter with thread pools pinned to ``threads``."""
    tag = f"{kind}-{len(list(tmp.iterdir()))}"
    spec_path, result_path = tmp / f"{tag}.spec.json", tmp / f"{tag}.result.json"
    spec_path.write_text(json.dumps({**spec, "kind": kind, "result_path": str(result_path)}))
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS",
                "RAYON_RS_NUM_CPUS"):
        env[var] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_VERBOSITY"] = "error"
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not result_path.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"{kind} child failed (exit {proc.returncode}):\n{tail}")
    return json.loads(result_path.read_text())


def child_main(spec_path: str) -> int:
    import warnings

    warnings.filterwarnings("ignore")
    spec = json.loads(Path(spec_path).read_text())
    result = CHILDREN[spec["kind"]](spec)
    Path(spec["result_path"]).write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("mxbai-integrations", "onnxruntime", "onnxruntime-gpu", "torch", "transformers",
                 "sentence-transformers", "mxbai-rerank", "optimum", "optimum-onnx", "onnx", "tokenizers", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    flags = ""
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile") if f" {f}" in flags]
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "isa": isa, "platform": platform.platform()}


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


def _exporter_digest() -> str:
    """Hash of the exporter's source: a cached artifact made by other export code is made again."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((REPO_ROOT / "onnx_export").glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _artifact_stamp(checkpoint: Path) -> dict[str, Any]:
    weights = checkpoint / "model.safetensors"
    return {"checkpoint": str(checkpoint.resolve()), "exporter": _exporter_digest(),
            "weights_mtime": weights.stat().st_mtime if weights.exists() else None}


def _artifact_ok(artifact: Path, checkpoint: Path, dtype: str, validate: bool) -> bool:
    manifest_path = artifact / "mxbai_onnx.json"
    stamp = artifact.parent / f"{artifact.name}.bench.json"
    if not manifest_path.is_file() or not stamp.is_file():
        return False
    data, st = json.loads(manifest_path.read_text()), json.loads(stamp.read_text())
    return (data.get("dtype") == dtype.split("-")[0] and st == _artifact_stamp(checkpoint)
            and (not validate or not data.get("validation", {}).get("skipped", False)))


def _export_all(checkpoint: Path, dtypes: Sequence[str], workdir: Path, *, validate: bool, rebuild: bool,
                threads: int, tmp: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for dtype in dtypes:
        artifact = workdir / "artifacts" / f"{checkpoint.name}-{dtype}"
        info: dict[str, Any] = {"path": str(artifact), "reused": True}
        if rebuild or not _artifact_ok(artifact, checkpoint, dtype, validate):
            _log(f"export {dtype} -> {artifact}")
            # "fp32-eager": the v2 graph before fused attention (traced eager attention), for before/after rows.
            info = {"path": str(artifact), "reused": False, **run_child(
                "export", {"checkpoint": str(checkpoint), "artifact": str(artifact), "dtype": dtype.split("-")[0],
                           "validate": validate, "fused_attention": not dtype.endswith("-eager")},
                threads=threads, tmp=tmp)}
            (artifact.parent / f"{artifact.name}.bench.json").write_text(json.dumps(_artifact_stamp(checkpoint)))
        manifest = json.loads((artifact / "mxbai_onnx.json").read_text())
        info["validated"] = not manifest.get("validation", {}).get("skipped", False)
        info["quantization"] = manifest.get("created_with", {}).get("quantization")
        out[dtype] = info
    return out


def _log(msg: str) -> None:
    print(f"[rerank_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def plan_backends(fam: str, dtypes: Sequence[str], device: str, batching: bool,
                  sweep: Sequence[int] = ()) -> list[dict[str, Any]]:
    """The rows of one run: ONNX dtypes, the batching variants, then the references (primary first)."""
    rows: list[dict[str, Any]] = []
    for dtype in dtypes:
        rows.append({"name": f"onnx-{dtype}", "kind": "onnx", "dtype": dtype, "batching": "budget"})
    base = "fp16" if device == "cuda" else "fp32"
    if batching:
        for mode in ("sorted", "fixed"):
            rows.append({"name": f"onnx-{base}-{mode}", "kind": "onnx", "dtype": base, "batching": mode,
                         "variant": True})
    for budget in sweep:
        rows.append({"name": f"onnx-{base}-budget{budget}", "kind": "onnx", "dtype": base, "batching": "budget",
                     "max_batch_tokens": budget, "variant": True})
    # On cuda the fp32 rows are the drift reference only; speed is compared with fp16/bf16.
    torch_dtypes = ["fp16", "bf16", "fp32"] if device == "cuda" else ["fp32"]
    refs = ["crossencoder", "mxbai-v1"] if fam == "v1" else ["mxbai-v2"]
    for ref in refs:
        for td in torch_dtypes:
            label = {"crossencoder": "CrossEncoder", "mxbai-v1": "MxbaiRerankV1", "mxbai-v2": "MxbaiRerankV2"}[ref]
            rows.append({"name": f"torch-{label}-{td}", "kind": "reference", "reference": ref, "torch_dtype": td,
                         "label": label})
    return rows


def summarise(rows: list[dict[str, Any]], *, n_docs: int, tokens: int, flops: float, peak: float,
              primary: str, drift_ref: str) -> None:
    """Fill derived metrics in place: rates, ratios against the primary reference, drift."""
    by_name = {r["name"]: r for r in rows}
    ref, dref = by_name[primary], by_name[drift_ref]
    fp32 = by_name.get("onnx-fp32")
    for r in rows:
        lat = r["latencies_s"]
        r["latency_median_s"] = statistics.median(lat)
        r["latency_min_s"] = min(lat)
        r["docs_per_s"] = n_docs / r["latency_median_s"]
        r["tokens_per_s"] = tokens / r["latency_median_s"]
    for r in rows:
        r["speedup"] = ref["latency_median_s"] / r["latency_median_s"]
        r["mem_ratio"] = ref["peak_rss"] / r["peak_rss"]
        r["achieved_flops"] = flops / r["latency_median_s"]
        r["fraction_of_peak"] = r["achieved_flops"] / peak if peak else None
        r.update(drift(r["scores"], dref["scores"]))
        if fp32 is not None and r is not fp32:
            r["drift_vs_onnx_fp32"] = drift(r["scores"], fp32["scores"])


def _batch_padding(lengths: Sequence[int], batch_size: int, max_tokens: int) -> dict[str, dict[str, float]]:
    """Padded tokens each batch plan feeds the model for these rows (what the batching rows differ in)."""
    from mxbai_integrations.batching import fixed_batches, padded_length, plan_batches

    def cost(batches: list[list[int]]) -> dict[str, float]:
        padded = sum(len(b) * padded_length(max(lengths[i] for i in b)) for b in batches)
        return {"batches": len(batches), "padded_tokens": padded, "real_tokens": sum(lengths),
                "padding_efficiency": sum(lengths) / padded}

    return {"budget": cost(plan_batches(lengths, batch_size=batch_size, max_batch_tokens=max_tokens)),
            "sorted": cost(plan_batches(lengths, batch_size=batch_size, max_batch_tokens=HUGE_BUDGET)),
            "fixed": cost(fixed_batches(len(lengths), batch_size=batch_size))}


def check_targets(key: str, rows: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    """Each issue target for this shape, measured; ``note`` says when the run is not the target's condition."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for t in TARGETS.get(key, []):
        row = by_name.get(t["row"])
        if row is None:
            continue
        value = row[t["metric"]]
        ok = value >= t["min"] if "min" in t else value <= t["max"]
        out.append({**t, "value": value, "passed": bool(ok),
                    "note": note})
    return out


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------
def _mb(x: float | None) -> str:
    return "-" if x is None else f"{x / 2**20:,.0f}"


def markdown(result: dict[str, Any]) -> str:
    m, rows = result["meta"], result["backends"]
    depth = m["num_hidden_layers"]
    depth_note = (f"**depth cut to {depth} of {m['full_depth']} layers**" if m["cut_depth"]
                  else f"full depth ({depth} layers)")
    peaks = ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in result["peaks"].items() if isinstance(v, float))
    lines = [
        f"### {m['shape']} ({m['family']}), {depth_note}, {m['device']}, {m['threads']} threads",
        "",
        f"{m['n_docs']} documents, {m['total_tokens']:,} tokens in all (per row min {m['row_tokens_min']}, "
        f"median {m['row_tokens_median']:.0f}, max {m['row_tokens_max']}); batch_size {m['batch_size']}; "
        f"{m['repeats']} timed repeats after {m['warmup']} warm-up. Model work {m['model_flops'] / 1e9:,.1f} GFLOP "
        f"per query. Matmul peak (GFLOP/s, {result['peaks'].get('size')}^2): {peaks}; "
        f"'% peak' is against the best of them. Ratios are against {m['primary_reference']} (mem ratio: its "
        "process peak RSS over this row's; 'ranking peak' is the peak after loading); drift against "
        f"{m['drift_reference']} (its scores: std {m['reference_score_std']:.3g}, range "
        f"{m['reference_score_range'][0]:.3g}..{m['reference_score_range'][1]:.3g}). "
        f"Load average at start {m['loadavg_start']}, end {m['loadavg_end']}."
        + ("" if m["exports_validated"] else " Exports made with validate=False (drift is measured here instead)."),
        "",
        "| backend | median s | min s | docs/s | tokens/s | speed-up | peak RSS MiB | ranking peak MiB | mem ratio "
        + ("| GPU MiB " if m["device"] == "cuda" else "")
        + "| max abs diff | Spearman | top-10 | GFLOP/s | % peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if m["device"] == "cuda" else "")
        + "---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        gpu = ""
        if m["device"] == "cuda":
            gpu = f"| {_mb(r.get('gpu_max_reserved') or r.get('gpu_mem_process'))} "
        pct = "-" if r["fraction_of_peak"] is None else f"{100 * r['fraction_of_peak']:.0f}%"
        lines.append(
            f"| {r['name']} | {r['latency_median_s']:.3f} | {r['latency_min_s']:.3f} | {r['docs_per_s']:.1f} "
            f"| {r['tokens_per_s']:,.0f} | {r['speedup']:.2f}x | {_mb(r['peak_rss'])} "
            f"| {_mb(r.get('peak_rss_serving'))} | {r['mem_ratio']:.2f}x "
            f"{gpu}| {r['max_abs']:.2e} | {r['spearman']:.4f} | {r['top10_overlap']:.1f} "
            f"| {r['achieved_flops'] / 1e9:,.1f} | {pct} |")
    if result.get("batching"):
        b = result["batching"]
        lines += ["", "Batching (same artifact, same data): token budget vs fixed-size batches", "",
                  "| plan | batches | padded tokens | padding efficiency | median s | speed-up vs fixed |",
                  "|---|---:|---:|---:|---:|---:|"]
        for plan, desc in (("budget", f"token budget (sorted, batch x length <= {b['max_batch_tokens']:,})"),
                           ("sorted", "sorted by length, fixed size, no cap"),
                           ("fixed", "input order, fixed size")):
            p = b[plan]
            gain = b["fixed"]["latency_median_s"] / p["latency_median_s"]
            lines.append(f"| {desc} | {p['batches']} | {p['padded_tokens']:,} | {100 * p['padding_efficiency']:.0f}% "
                         f"| {p['latency_median_s']:.3f} | {gain:.2f}x |")
    for dtype, prof in (result.get("profiles") or {}).items():
        lines += ["", f"onnxruntime profile, onnx-{dtype}: {prof['kernel_s']:.3f} s in kernels of a "
                  f"{prof['wall_s']:.3f} s rank() call", "", "| op | s | share | calls |", "|---|---:|---:|---:|"]
        lines += [f"| {op} | {sec:.3f} | {100 * share:.1f}% | {n} |" for op, sec, share, n in prof["ops"][:12]]
    if result.get("targets"):
        lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
        for t in result["targets"]:
            v = t["value"]
            shown = f"{v:.2f}x" if t["metric"] in ("speedup", "mem_ratio") else f"{v:.4g}"
            lines.append(f"| {t['what']} | {shown} | {'yes' if t['passed'] else 'NO'}"
                         f"{' (not the target condition: ' + t['note'] + ')' if t['note'] else ''} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=SHAPES)
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
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.device == "cuda":
        _require_cuda()
    dtypes = [d.strip() for d in (args.dtypes or ("fp16" if args.device == "cuda" else "fp32,int8")).split(",")]
    bad = [d for d in dtypes if d not in ("fp32", "fp16", "int8")]
    if bad:
        raise SystemExit(f"--dtypes: unknown {bad}; choose from fp32, fp16, int8")
    fam = family(args.shape)
    workdir: Path = args.workdir.resolve()
    checkpoint = make_model(args.shape, workdir / "models" / (args.shape + (f"-L{args.layers}" if args.layers else "")),
                            layers=args.layers)
    config = json.loads((checkpoint / "config.json").read_text())
    full_depth = json.loads((REPO_ROOT / "tests" / "model_shapes.json").read_text())[
        f"mxbai-rerank-{args.shape}"]["num_hidden_layers"]
    loadavg_start = [round(x, 2) for x in os.getloadavg()]
    t_start = time.time()

    rows = plan_backends(fam, dtypes, args.device, batching=not args.no_batching, sweep=args.sweep_budgets)
    base_row = f"onnx-{'fp16' if args.device == 'cuda' else 'fp32'}"
    if args.skip_reference:
        # ONNX rows among themselves (batching, budgets): ratios and drift against the base ONNX row.
        rows = [r for r in rows if r["kind"] != "reference"]
        if base_row not in {r["name"] for r in rows}:
            raise SystemExit(f"--skip-reference needs the {base_row} row (--dtypes must include it)")
        primary = drift_ref = base_row
    else:
        refs = [r["name"] for r in rows if r["kind"] == "reference"]
        primary = refs[0]  # speed and memory ratios: CrossEncoder (v1) / MxbaiRerankV2 (v2), fp16 on cuda
        drift_ref = next(n for n in refs if n.endswith("-fp32"))  # drift is always against torch fp32
    if args.eager_row and fam == "v2":
        dtypes = [*dtypes, "fp32-eager"]
        rows.insert(len(dtypes) - 1, {"name": "onnx-fp32-eager", "kind": "onnx", "dtype": "fp32-eager",
                                      "batching": "budget", "variant": True})
    if args.backends is not None:
        wanted = {b.strip() for b in args.backends.split(",")}
        unknown = wanted - {r["name"] for r in rows}
        if unknown:
            raise SystemExit(f"--backends: unknown {sorted(unknown)}; this run has {[r['name'] for r in rows]}")
        wanted |= {primary, drift_ref}
        rows = [r for r in rows if r["name"] in wanted]
    needed = [d for d in dtypes if any(r.get("dtype") == d for r in rows)] or dtypes[:1]

    with tempfile.TemporaryDirectory(prefix="rerank_bench-") as tmp_name:
        tmp = Path(tmp_name)
        artifacts = _export_all(checkpoint, needed, workdir, validate=args.validate, rebuild=args.rebuild,
                                threads=args.threads, tmp=tmp)
        query, docs, doc_tokens = make_inputs(checkpoint / "tokenizer.json", args.docs, args.seed)
        lengths = pair_lengths(Path(artifacts[needed[0]]["path"]), query, docs)
        _log("matmul peak")
        peaks = run_child("peak", {"threads": args.threads, "device": args.device}, threads=args.threads, tmp=tmp)
        common = {"query": query, "docs": docs, "threads": args.threads, "device": args.device,
                  "batch_size": args.batch_size, "warmup": args.warmup, "repeats": args.repeats,
                  "max_batch_tokens": args.max_batch_tokens}
        for row in rows:
            _log(f"{row['name']}")
            spec = dict(common)
            if row["kind"] == "onnx":
                spec.update(artifact=artifacts[row["dtype"]]["path"], batching=row["batching"],
                            max_batch_tokens=row.get("max_batch_tokens", args.max_batch_tokens))
            else:
                spec.update(checkpoint=str(checkpoint), reference=row["reference"], torch_dtype=row["torch_dtype"])
            row["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
            row.update(run_child(row["kind"], spec, threads=args.threads, tmp=tmp))
        profiles: dict[str, Any] = {}
        for dtype in (dtypes if args.profile else []):
            _log(f"profile onnx-{dtype}")
            profiles[dtype] = run_child("profile", {**common, "artifact": artifacts[dtype]["path"]},
                                        threads=args.threads, tmp=tmp)

    flops = model_flops(config, lengths)
    peak = max((v for k, v in peaks.items() if isinstance(v, float)), default=0.0)
    summarise(rows, n_docs=len(docs), tokens=sum(lengths), flops=flops, peak=peak, primary=primary,
              drift_ref=drift_ref)
    batching: dict[str, Any] | None = None
    by_name = {r["name"]: r for r in rows}
    base = "fp16" if args.device == "cuda" else "fp32"
    if all(n in by_name for n in (f"onnx-{base}", f"onnx-{base}-sorted", f"onnx-{base}-fixed")):
        budget = by_name[f"onnx-{base}"]["max_batch_tokens"]
        batching = {"max_batch_tokens": budget, **_batch_padding(lengths, args.batch_size, budget)}
        for plan, name in (("budget", f"onnx-{base}"), ("sorted", f"onnx-{base}-sorted"),
                           ("fixed", f"onnx-{base}-fixed")):
            batching[plan]["latency_median_s"] = by_name[name]["latency_median_s"]
            batching[plan]["latency_min_s"] = by_name[name]["latency_min_s"]
    cut = args.layers is not None and args.layers != full_depth
    ref_scores = np.asarray(by_name[drift_ref]["scores"])
    key = args.shape if args.device == "cpu" else f"{args.shape}@cuda"
    result = {
        "meta": {
            "shape": args.shape, "family": fam, "device": args.device, "threads": args.threads,
            "num_hidden_layers": config["num_hidden_layers"], "full_depth": full_depth, "cut_depth": cut,
            "n_docs": len(docs), "seed": args.seed, "batch_size": args.batch_size, "repeats": args.repeats,
            "warmup": args.warmup, "query": query, "doc_tokens": doc_tokens, "row_tokens": lengths,
            "total_tokens": sum(lengths), "row_tokens_min": min(lengths), "row_tokens_max": max(lengths),
            "row_tokens_median": statistics.median(lengths), "model_flops": flops,
            "flops_formula": model_flops.__doc__, "primary_reference": primary, "drift_reference": drift_ref,
            "reference_score_std": float(np.std(ref_scores)),
            "reference_score_range": [float(np.min(ref_scores)), float(np.max(ref_scores))],
            "exports_validated": all(a["validated"] for a in artifacts.values()), "artifacts": artifacts,
            "checkpoint": str(checkpoint), "loadavg_start": loadavg_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()], "wall_s": time.time() - t_start,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": _machine(), "versions": _versions(),
            "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        },
        "peaks": peaks,
        "backends": rows,
        "batching": batching,
        "profiles": profiles,
        "targets": [] if args.skip_reference else check_targets(key, rows, "; ".join(
            ([f"depth cut to {config['num_hidden_layers']}"] if cut else [])
            + ([f"{len(docs)} documents, not 100"] if len(docs) != 100 else [])
            + ([f"{args.threads} threads, not 2"] if args.threads != 2 and args.device == "cpu" else []))),
    }
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
