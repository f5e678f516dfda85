"""``rerank_bench.py``'s child processes: each backend timed alone, in a fresh interpreter.

A child gets a spec (plain JSON: the query, the documents, threads, the artifact or checkpoint)
and returns a ``Measured`` record as a dict. ONNX children never import torch; reference children
import only their own library. Both time the whole ``rank()`` (tokenization included) and split the
process's VmHWM into the load peak and the ranking peak.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from benchlib.artifacts import child_export
from benchlib.children import ChildFn
from benchlib.flops import child_peak
from benchlib.machine import PeakMemory, gpu_mem_of_pid, rss_bytes
from benchlib.ort_profile import profile_rank
from benchlib.rerank.records import Measured
from benchlib.timing import time_calls

# "sorted" and "fixed" rows turn the token cap off: the reranker then batches by batch_size alone.
HUGE_BUDGET = 1 << 40


def scores_from_rank(results: Sequence[Any], n: int, index: str = "index", score: str = "score") -> list[float]:
    """Input-order scores from a rank() result list (objects or dicts, either library's field names)."""
    out = [math.nan] * n
    for r in results:
        i = r[index] if isinstance(r, dict) else getattr(r, index)
        s = r[score] if isinstance(r, dict) else getattr(r, score)
        out[int(i)] = float(s)
    return out


def _providers(device: str) -> list[str]:
    return ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


def _measure(call: Callable[[], list[float]], spec: dict[str, Any], *, load_s: float, rss_imports: int,
             rss_loaded: int, **extra: Any) -> dict[str, Any]:
    """Time ``call`` (warm-up, repeats) with the ranking peak split from the load peak; the child's answer."""
    mem = PeakMemory()
    mem.start_serving()
    timing, scores = time_calls(call, warmup=spec["warmup"], repeats=spec["repeats"])
    record = Measured(load_s=load_s, latencies_s=timing.latencies_s, scores=scores, rss_after_imports=rss_imports,
                      rss_after_load=rss_loaded, **asdict(mem.record()), **extra)
    return asdict(record)


def child_onnx(spec: dict[str, Any]) -> dict[str, Any]:
    """Time MxbaiReranker.rank on one artifact; ``batching`` picks the batch plan under test."""
    from mxbai_integrations import MxbaiReranker

    rss_imports = rss_bytes()
    query, docs, bs = spec["query"], spec["docs"], spec["batch_size"]
    # The reranker's own session defaults are what users get, so only the thread count is set here.
    kw: dict[str, Any] = {"intra_op_num_threads": spec["threads"]}
    if spec.get("max_batch_tokens"):
        kw["max_batch_tokens"] = spec["max_batch_tokens"]
    if spec["batching"] != "budget":
        # No token cap: "sorted" is length-sorted fixed-size batches, "fixed" feeds input-order slices.
        kw["max_batch_tokens"] = HUGE_BUDGET
    t0 = time.perf_counter()
    reranker = MxbaiReranker(spec["artifact"], providers=_providers(spec["device"]), batch_size=bs, verify=False,
                             **kw)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_bytes()

    if spec["batching"] == "fixed":
        def call() -> list[float]:
            # score() on one slice of batch_size rows is exactly one batch padded to its longest row.
            scores: list[float] = []
            for s in range(0, len(docs), bs):
                scores.extend(reranker.score(query, docs[s: s + bs], batch_size=bs))
            _ = sorted(range(len(scores)), key=lambda i: (-scores[i], i))  # the sort rank() adds
            return scores
    else:
        def call() -> list[float]:
            return scores_from_rank(reranker.rank(query, docs, return_documents=False), len(docs))

    out = _measure(call, spec, load_s=load_s, rss_imports=rss_imports, rss_loaded=rss_loaded,
                   providers=reranker.providers, session_threads=spec["threads"],
                   max_batch_tokens=reranker.max_batch_tokens)
    if spec["device"] == "cuda":  # after the timed calls: what the arena holds once it has served them
        out["gpu_mem_process"] = gpu_mem_of_pid(os.getpid())
    return out


def _load_reference(spec: dict[str, Any], dtype: Any) -> tuple[Any, Callable[[], list[float]]]:
    """The reference library's model and a call of its own ``rank()`` that returns input-order scores."""
    device, path, query, docs, bs = spec["device"], spec["checkpoint"], spec["query"], spec["docs"], spec["batch_size"]
    if spec["reference"] == "crossencoder":
        from sentence_transformers import CrossEncoder

        model: Any = CrossEncoder(path, device=device, model_kwargs={"dtype": dtype})

        def call() -> list[float]:
            res = model.rank(query, docs, batch_size=bs, return_documents=False, show_progress_bar=False)
            return scores_from_rank(res, len(docs), index="corpus_id")
        return model, call

    from mxbai_rerank import MxbaiRerankV1, MxbaiRerankV2

    cls = MxbaiRerankV1 if spec["reference"] == "mxbai-v1" else MxbaiRerankV2
    model = cls(path, device=device, torch_dtype=dtype)

    def call_mxbai() -> list[float]:
        res = model.rank(query, docs, top_k=len(docs), batch_size=bs, return_documents=False)
        return scores_from_rank(res, len(docs))
    return model, call_mxbai


def child_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """Time the PyTorch reference library's own rank() on the checkpoint."""
    import torch

    torch.set_num_threads(spec["threads"])
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[spec["torch_dtype"]]
    # The library's import is part of the load: sentence-transformers / mxbai_rerank come in here.
    if spec["reference"] == "crossencoder":
        import sentence_transformers  # noqa: F401
    else:
        import mxbai_rerank  # noqa: F401
    rss_imports = rss_bytes()
    t0 = time.perf_counter()
    _, call = _load_reference(spec, dtype)
    load_s = time.perf_counter() - t0
    rss_loaded = rss_bytes()
    cuda = spec["device"] == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    out = _measure(call, spec, load_s=load_s, rss_imports=rss_imports, rss_loaded=rss_loaded,
                   torch_threads=torch.get_num_threads())
    if cuda:
        out.update(gpu_max_allocated=int(torch.cuda.max_memory_allocated()),
                   gpu_max_reserved=int(torch.cuda.max_memory_reserved()),
                   gpu_mem_process=gpu_mem_of_pid(os.getpid()))
    return out


def child_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """onnxruntime's per-op profile of one rank() call after a warm-up: where the time goes."""
    return profile_rank(spec["artifact"], spec["query"], spec["docs"], threads=spec["threads"],
                        batch_size=spec["batch_size"], providers=_providers(spec["device"]),
                        max_batch_tokens=spec.get("max_batch_tokens")).to_dict()


CHILDREN: dict[str, ChildFn] = {
    "onnx": child_onnx, "profile": child_profile, "reference": child_reference, "peak": child_peak,
    "export": child_export,
}
