"""CPU memory of v2 artifacts: where it goes, what each session option costs or saves, and llama.cpp beside us.

Every row runs in a fresh process (so its VmHWM is its own) on the same token ids, with every thread pool
pinned to ``--threads``:

- ``onnx-<dtype>[/<variant>]``: ``MxbaiReranker.score`` on the artifact. ``default`` is the reranker's own
  session (what users get); the other variants pass ``session_options=`` (or load a re-laid-out copy of
  the artifact) and can be combined with ``+``:
  ``arena-off`` (``enable_cpu_mem_arena = False``), ``arena-same`` (the CPU arena registered in the
  environment with ``arena_extend_strategy`` kSameAsRequested, ``session.use_env_allocators``),
  ``no-prepack`` (``session.disable_prepacking``), ``mmap`` (the same graph with its weights in an
  external data file at page-aligned offsets, which onnxruntime memory-maps), ``inline`` (the same graph
  with every weight inside model.onnx), ``budget<N>`` (``max_batch_tokens=N``).
- ``llama.cpp-<type>``: llama.cpp (benchmarks/llama_cpp_peer.py) on GGUF files converted from the same
  checkpoint, scoring the same token ids through its C API.

Workloads: ``docs`` (one query over ``--docs`` documents of 30..500 tokens, rerank_bench.py's mix) and
``long`` (one document filling ``--long-tokens``, long_context_bench.py's text).

For each row: load time, RSS after imports and after load, the load peak (VmHWM after the session is
built), the serving peak (VmHWM reset after load, then the timed calls) and the process peak (the larger),
latencies and scores (drift against onnx-fp32/default on the same workload). ``--breakdown`` adds the
weights as stored (from the graph file) and, per batch of the token-budget plan, the activation peak
(arena off, VmHWM reset before each batch). ``--sessions N`` loads N rerankers of one artifact in one
process and reports RSS and PSS after each load and after each has scored once.

    python benchmarks/memory_bench.py --shape base-v2 --dtypes fp32,int8,int4 --workloads docs,long \\
        --variants default --llama-cpp F16,Q8_0,Q4_0 --json benchmarks/out/memory-base-v2.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchlib.artifacts import artifact_stamp
from benchlib.children import child_main, run_child
from benchlib.inputs import QUERY, long_document, make_inputs
from benchlib.machine import loadavg, machine_info, proc_status, reset_peak_rss, versions
from benchlib.models import ALL_SHAPES, full_depth
from benchlib.results import Drift
from make_model import make_model

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SCRIPT = Path(__file__).resolve()
DEFAULT_WORKDIR = BENCH_DIR / "out"
VARIANT_PARTS = ("default", "arena-off", "arena-same", "no-prepack", "mmap", "inline", "budget<N>")
LAYOUT_PARTS = ("mmap", "inline")
MiB = 2**20


def _log(msg: str) -> None:
    print(f"[memory_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# /proc readings (Linux)
# ------------------------------------------------------------------------------------------------
def proc_pss() -> int | None:
    """Proportional set size: shared file pages divided among the processes (and mappings) that map them."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------------------------
# Artifacts: weights as stored, and re-laid-out copies (same graph, other external-data layout)
# ------------------------------------------------------------------------------------------------
def stored_weights(artifact: Path) -> dict[str, Any]:
    """Initializer bytes of the graph by role: gathered tables, MatMul weights, the rest; and file sizes."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(artifact / "model.onnx"), load_external_data=False)
    graph = model.graph

    def nbytes(t: Any) -> int:
        if uses_external_data(t):
            return int(ExternalDataInfo(t).length or 0)
        return len(t.raw_data) or int(np.prod(t.dims, dtype=np.int64)) * 4

    role: dict[str, str] = {}
    for node in graph.node:
        if node.op_type in ("Gather", "GatherBlockQuantized") and node.input:
            for name in node.input[:1] + ([node.input[2]] if node.op_type == "GatherBlockQuantized" else []):
                role[name] = "embedding"
        elif node.op_type in ("MatMul", "MatMulNBits", "MatMulInteger", "DynamicQuantizeMatMul", "Gemm"):
            for name in node.input[1:]:
                role.setdefault(name, "matmul")
    sizes = {"embedding": 0, "matmul": 0, "other": 0}
    for t in graph.initializer:
        sizes[role.get(t.name, "other")] += nbytes(t)
    files = {p.name: p.stat().st_size for p in artifact.iterdir() if p.name.startswith("model.onnx")}
    return {**sizes, "total": sum(sizes.values()), "files": files,
            "external": any(uses_external_data(t) for t in graph.initializer)}


def relayout(artifact: Path, layout: str, out: Path) -> Path:
    """A copy of ``artifact`` with the same graph and its weights inline or in page-aligned external data."""
    import onnx
    from onnx.external_data_helper import set_external_data

    from mxbai_integrations.artifact import (
        EXTERNAL_DATA_NAME,
        MODEL_NAME,
        TOKENIZER_NAME,
        file_record,
        read_manifest,
        write_manifest,
    )

    stamp = out / ".relayout.json"
    want = {"source": str(artifact), "layout": layout, "mtime": (artifact / MODEL_NAME).stat().st_mtime}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = onnx.load(str(artifact / MODEL_NAME))
    if layout == "inline":
        onnx.save_model(model, str(out / MODEL_NAME))
    else:
        align = os.sysconf("SC_PAGE_SIZE")
        with (out / EXTERNAL_DATA_NAME).open("wb") as f:
            for t in model.graph.initializer:
                if t.HasField("raw_data") and len(t.raw_data) >= 1024:
                    f.write(b"\0" * (-f.tell() % align))
                    offset = f.tell()
                    f.write(t.raw_data)
                    set_external_data(t, EXTERNAL_DATA_NAME, offset, len(t.raw_data))
                    t.ClearField("raw_data")
                    t.data_location = onnx.TensorProto.EXTERNAL
        onnx.save_model(model, str(out / MODEL_NAME))
    del model
    shutil.copyfile(artifact / TOKENIZER_NAME, out / TOKENIZER_NAME)
    manifest = read_manifest(artifact)
    files = {name: file_record(out / name) for name in (MODEL_NAME, EXTERNAL_DATA_NAME, TOKENIZER_NAME)
             if (out / name).exists()}
    write_manifest(out, dataclasses.replace(manifest, files=files))
    stamp.write_text(json.dumps(want))
    return out


# ------------------------------------------------------------------------------------------------
# Children
# ------------------------------------------------------------------------------------------------
def session_options(variant: str, threads: int) -> Any:
    """The SessionOptions of a variant (None for ``default``: the reranker builds its own)."""
    import onnxruntime as ort

    parts = [p for p in variant.split("+") if p not in LAYOUT_PARTS and p != "default" and not p.startswith("budget")]
    if not parts:
        return None
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    for part in parts:
        if part == "arena-off":
            so.enable_cpu_mem_arena = False
        elif part == "no-prepack":
            so.add_session_config_entry("session.disable_prepacking", "1")
        elif part == "arena-same":
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            # max_mem 0 (no cap), extend strategy 1 = kSameAsRequested, defaults for the rest.
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
            so.add_session_config_entry("session.use_env_allocators", "1")
        else:
            raise SystemExit(f"unknown variant part {part!r}; choose from {VARIANT_PARTS}")
    return so


def _make_reranker(spec: dict[str, Any]) -> Any:
    from mxbai_integrations import MxbaiReranker

    kw: dict[str, Any] = {"providers": ["CPUExecutionProvider"], "verify": False}
    so = session_options(spec["variant"], spec["threads"])
    if so is None:
        kw["intra_op_num_threads"] = spec["threads"]
    else:
        kw["session_options"] = so
    if spec.get("max_length"):
        kw["max_length"] = spec["max_length"]
    budget = next((int(p[len("budget"):]) for p in spec["variant"].split("+") if p.startswith("budget")), None)
    if budget:
        kw["max_batch_tokens"] = budget
    return MxbaiReranker(spec["artifact"], **kw)


def child_onnx(spec: dict[str, Any]) -> dict[str, Any]:
    """Load one artifact with one variant, then time ``score`` on the workload."""
    import onnxruntime  # noqa: F401  (imports are not the model's memory)

    import mxbai_integrations  # noqa: F401

    after_imports = proc_status()
    t0 = time.perf_counter()
    reranker = _make_reranker(spec)
    load_s = time.perf_counter() - t0
    loaded = proc_status()
    reset = reset_peak_rss()
    query, docs = spec["query"], spec["docs"]
    scores: list[float] = []
    for _ in range(spec["warmup"]):
        scores = reranker.score(query, docs)
    latencies = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        scores = reranker.score(query, docs)
        latencies.append(time.perf_counter() - t0)
    end = proc_status()
    return {
        "load_s": load_s, "latencies_s": latencies, "scores": scores,
        "rss_after_imports": after_imports["VmRSS"], "rss_after_load": loaded["VmRSS"],
        "anon_after_load": loaded["RssAnon"], "file_after_load": loaded["RssFile"],
        "peak_rss_load": loaded["VmHWM"], "peak_rss_serving": end["VmHWM"] if reset else None,
        "peak_rss": max(loaded["VmHWM"], end["VmHWM"]), "rss_end": end["VmRSS"], "anon_end": end["RssAnon"],
        "file_end": end["RssFile"], "max_batch_tokens": reranker.max_batch_tokens,
    }


def child_batches(spec: dict[str, Any]) -> dict[str, Any]:
    """Activation memory of the token-budget plan's batches, largest (rows x padded length) first.

    Each figure is how far VmHWM rose above the RSS after loading (the reranker's own session, arena
    on). The first, largest batch runs in a fresh arena, so its figure is its own activation peak
    (arena rounding included); later, smaller batches reuse that arena and show only what they add.
    """
    from mxbai_integrations.batching import pad_batch, plan_batches

    reranker = _make_reranker(spec)
    rows = reranker.encode(spec["query"], spec["docs"])
    batches = plan_batches([len(r) for r in rows], batch_size=reranker.batch_size,
                           max_batch_tokens=reranker.max_batch_tokens)
    session, manifest = reranker.session, reranker.manifest
    names = [i.name for i in session.get_inputs()]
    ids_name = next(n for n in names if "ids" in n)
    mask_name = next(n for n in names if n != ids_name)
    padded = [pad_batch([rows[i] for i in b], manifest.pad_token_id, side=manifest.padding_side) for b in batches]
    padded.sort(key=lambda im: -im[0].size)
    base = proc_status()["VmRSS"]
    reset_peak_rss()
    out = []
    for ids, mask in padded:
        t0 = time.perf_counter()
        session.run(None, {ids_name: ids, mask_name: mask})
        out.append({"rows": int(ids.shape[0]), "padded_length": int(ids.shape[1]), "tokens": int(mask.sum()),
                    "s": time.perf_counter() - t0, "peak_above_load": proc_status()["VmHWM"] - base})
    return {"batches": out, "rss_after_load": base}


def child_sessions(spec: dict[str, Any]) -> dict[str, Any]:
    """N rerankers of one artifact in one process: RSS and PSS after each load and after each scored once."""
    steps = [{"step": "imports", **proc_status(), "Pss": proc_pss()}]
    rerankers = []
    for k in range(spec["sessions"]):
        rerankers.append(_make_reranker(spec))
        steps.append({"step": f"load {k + 1}", **proc_status(), "Pss": proc_pss()})
    for k, r in enumerate(rerankers):
        r.score(spec["query"], spec["docs"])
        steps.append({"step": f"score {k + 1}", **proc_status(), "Pss": proc_pss()})
    return {"steps": steps}


def child_requantize(spec: dict[str, Any]) -> dict[str, Any]:
    name, info = requantize(Path(spec["fp32"]), spec["spec"], Path(spec["workdir"]))
    return {"name": name, "info": info}


def _child(kind: str, spec: dict[str, Any], *, threads: int) -> dict[str, Any]:
    """One measurement in a fresh interpreter (benchlib.children), tokenizers on one thread."""
    return run_child(SCRIPT, kind, spec, threads=threads, tokenizers_parallelism=False)


# ------------------------------------------------------------------------------------------------
# Parent
# ------------------------------------------------------------------------------------------------
def workloads(checkpoint: Path, names: Sequence[str], n_docs: int, long_tokens: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "docs":
            query, docs, _ = make_inputs(checkpoint / "tokenizer.json", n_docs, 0)
            out[name] = {"query": query, "docs": docs, "max_length": None}
        elif name == "long":
            out[name] = {"query": QUERY, "docs": [long_document(long_tokens)], "max_length": long_tokens}
        else:
            raise SystemExit(f"--workloads: unknown {name!r}; choose from docs, long")
    return out


def child_encode(spec: dict[str, Any]) -> dict[str, Any]:
    """The token ids MxbaiReranker feeds for a workload (its public encode), and the score token ids."""
    from mxbai_integrations import MxbaiReranker

    r = MxbaiReranker(spec["artifact"], providers=["CPUExecutionProvider"], verify=False,
                      max_length=spec["max_length"])
    ids = r.manifest.score.token_ids
    return {"rows": r.encode(spec["query"], spec["docs"]), "yes": ids.get("1"), "no": ids.get("0")}


def encode_rows(artifact: Path, work: dict[str, Any]) -> tuple[list[list[int]], tuple[int, int] | None]:
    """Token ids and the v2 (yes, no) score ids (None for v1), from a child (the parent never holds a session)."""
    out = _child("encode", {**work, "artifact": str(artifact)}, threads=1)
    if out["yes"] is None or out["no"] is None:
        return out["rows"], None
    return out["rows"], (int(out["yes"]), int(out["no"]))


def export_artifacts(checkpoint: Path, dtypes: Sequence[str], workdir: Path, rebuild: bool) -> dict[str, dict]:
    """Export (or reuse) one artifact per dtype; each export's own time and peak memory is recorded."""
    def reusable(artifact: Path) -> bool:
        # Same checkpoint (path and weights); unlike rerank_bench, an edit elsewhere in onnx_export does not
        # force a new export here (--rebuild does).
        stamp = artifact.parent / f"{artifact.name}.bench.json"
        if not (artifact / "mxbai_onnx.json").is_file() or not stamp.is_file():
            return False
        old, new = json.loads(stamp.read_text()), artifact_stamp(checkpoint)
        return json.loads((artifact / "mxbai_onnx.json").read_text()).get("dtype") == dtype and all(
            old.get(k) == new[k] for k in ("checkpoint", "weights_mtime"))

    out = {}
    for dtype in dtypes:
        artifact = workdir / "artifacts" / f"{checkpoint.name}-{dtype}"
        info: dict[str, Any] = {"path": str(artifact), "reused": True}
        if rebuild or not reusable(artifact):
            _log(f"export {dtype} -> {artifact}")
            code = ("import json, sys, time; from onnx_export import export_model; t = time.perf_counter(); "
                    f"export_model({str(checkpoint)!r}, {str(artifact)!r}, dtype={dtype!r}, validate=False, "
                    "force=True, progress=False); s = time.perf_counter() - t; "
                    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
                    "print(json.dumps({'export_s': s, 'export_peak_rss': int(hwm) * 1024}))")
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"export {dtype} failed:\n{proc.stderr[-3000:]}")
            info = {"path": str(artifact), "reused": False, **json.loads(proc.stdout.strip().splitlines()[-1])}
            (artifact.parent / f"{artifact.name}.bench.json").write_text(json.dumps(artifact_stamp(checkpoint)))
        manifest = json.loads((artifact / "mxbai_onnx.json").read_text())
        info["quantization"] = manifest.get("created_with", {}).get("quantization")
        out[dtype] = info
    return out


def requantize(fp32_artifact: Path, spec: str, workdir: Path) -> tuple[str, dict[str, Any]]:
    """An artifact made from the fp32 one with a changed quantization plan: ``NAME:DTYPE:key=value;...``.

    For studies (accuracy level, block sizes, embedding bits) without re-running the torch export.
    """
    from mxbai_integrations.artifact import (
        MODEL_NAME,
        TOKENIZER_NAME,
        file_record,
        read_manifest,
        write_manifest,
    )
    from onnx_export.quantize import plan_for, quantize_with_plan

    name, dtype, *rest = spec.split(":")
    changes: dict[str, Any] = {}
    for item in (rest[0].split(";") if rest and rest[0] else []):
        key, _, value = item.partition("=")
        changes[key] = None if value in ("", "none") else int(value)
    manifest = read_manifest(fp32_artifact)
    plan = dataclasses.replace(plan_for(manifest.family, dtype), **changes)
    out = workdir / "artifacts" / f"{fp32_artifact.name}-{name}"
    stamp = out / ".requantize.json"
    code = hashlib.sha256((REPO_ROOT / "onnx_export" / "quantize.py").read_bytes()).hexdigest()[:16]
    want = {"source": str(fp32_artifact), "plan": plan.record(), "quantize_py": code,
            "mtime": (fp32_artifact / MODEL_NAME).stat().st_mtime}
    old = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if {k: v for k, v in old.items() if k != "quantize_s"} != want:
        _log(f"requantize {name}: {plan.record()}")
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        t0 = time.perf_counter()
        record = quantize_with_plan(manifest.family, plan, fp32_artifact / MODEL_NAME, out / MODEL_NAME)
        shutil.copyfile(fp32_artifact / TOKENIZER_NAME, out / TOKENIZER_NAME)
        files = {n: file_record(out / n) for n in sorted(p.name for p in out.iterdir()) if not n.startswith(".")}
        created = {**manifest.created_with, "quantization": str(record)}
        write_manifest(out, dataclasses.replace(manifest, dtype=dtype, files=files, created_with=created))
        want["quantize_s"] = time.perf_counter() - t0
        stamp.write_text(json.dumps(want))
    info = json.loads(stamp.read_text())
    return name, {"path": str(out), "reused": True, "quantization": info["plan"],
                  "quantize_s": info.get("quantize_s")}


def _variant_plan(dtypes: Sequence[str], variants: Sequence[str]) -> list[tuple[str, str]]:
    """(dtype, variant) pairs; ``dtype:variant`` applies a variant to one dtype only."""
    plan = []
    for dtype in dtypes:
        for v in variants:
            only, _, name = v.rpartition(":")
            if only and only != dtype:
                continue
            for part in name.split("+"):
                if part not in VARIANT_PARTS and not (part.startswith("budget") and part[6:].isdigit()):
                    raise SystemExit(f"--variants: unknown {part!r}; choose from {VARIANT_PARTS}")
            plan.append((dtype, name))
    return plan


def _summary(row: dict[str, Any], ref: dict[str, Any] | None) -> None:
    lat = row["latencies_s"]
    row["latency_median_s"] = statistics.median(lat)
    row["latency_min_s"] = min(lat)
    if ref is not None and ref is not row:
        if len(row["scores"]) > 1:
            row.update(Drift.of(row["scores"], ref["scores"]).to_dict())
        else:
            row["max_abs"] = abs(row["scores"][0] - ref["scores"][0])


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    lines = [f"### {m['shape']}, {m['depth_note']}, {m['threads']} threads", ""]
    for wname, work in result["workloads"].items():
        lines += [f"**{wname}**: {work['rows']} rows, {work['tokens']:,} tokens (longest {work['longest']}); "
                  f"ratios against {work['ratio_against']} (same run); drift against onnx-fp32/default.", "",
                  "| backend | load s | median s | min s | peak RSS MiB | load peak MiB | serving peak MiB "
                  "| RSS after load MiB | x peak vs ref | time vs ref | max abs | Spearman | top-10 | load avg |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        ref = work["rows_by_name"].get(work["ratio_against"])
        for row in work["rows_by_name"].values():
            serving = row.get("peak_rss_serving")
            after = row.get("rss_after_load")
            ratio = f"{row['peak_rss'] / ref['peak_rss']:.2f}x" if ref else "-"
            tratio = f"{row['latency_median_s'] / ref['latency_median_s']:.2f}x" if ref else "-"
            sp = f"{row['spearman']:.4f}" if "spearman" in row else "-"
            top = f"{row['top10_overlap']:.1f}" if "top10_overlap" in row else "-"
            mx = f"{row['max_abs']:.3g}" if "max_abs" in row else "-"
            lines.append(
                f"| {row['name']} | {row['load_s']:.1f} | {row['latency_median_s']:.2f} | {row['latency_min_s']:.2f} "
                f"| {row['peak_rss'] / MiB:,.0f} | {row['peak_rss_load'] / MiB:,.0f} "
                f"| {'-' if serving is None else f'{serving / MiB:,.0f}'} "
                f"| {'-' if after is None else f'{after / MiB:,.0f}'} | {ratio} | {tratio} | {mx} | {sp} | {top} "
                f"| {row['loadavg_before']} |")
        lines.append("")
    for dtype, st in result.get("stored", {}).items():
        lines.append(f"stored {dtype}: embedding {st['embedding'] / MiB:,.0f} MiB, matmul {st['matmul'] / MiB:,.0f} "
                     f"MiB, other {st['other'] / MiB:,.0f} MiB, files {st['files']}")
    for key, b in result.get("batches", {}).items():
        first, last = b["batches"][0], b["batches"][-1]
        lines.append(f"activations {key}: {len(b['batches'])} batches; the largest ({first['rows']} x "
                     f"{first['padded_length']}) alone {first['peak_above_load'] / MiB:,.0f} MiB above the loaded "
                     f"session, the whole plan {last['peak_above_load'] / MiB:,.0f} MiB")
    for key, s in result.get("sessions", {}).items():
        lines.append(f"sessions {key}: " + "; ".join(
            f"{st['step']} RSS {st['VmRSS'] / MiB:,.0f} PSS {(st['Pss'] or 0) / MiB:,.0f}" for st in s["steps"]))
    return "\n".join(lines)


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "onnx": child_onnx, "batches": child_batches, "sessions": child_sessions, "encode": child_encode,
    "requantize": child_requantize,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=ALL_SHAPES, help="v1 shapes: onnx rows only (no llama.cpp, no long workload)")
    p.add_argument("--layers", type=int, default=None, help="cut depth (every table says so)")
    p.add_argument("--dtypes", default="fp32,int8,int4")
    p.add_argument("--workloads", default="docs,long")
    p.add_argument("--variants", default="default",
                   help=f"comma list of variants ({', '.join(VARIANT_PARTS)}; join with '+'; 'int8:no-prepack' "
                        "for one dtype only)")
    p.add_argument("--llama-cpp", default="", help="GGUF types to run beside us, e.g. F16,Q8_0,Q4_0")
    p.add_argument("--llama-cpp-cache", type=Path, default=None, help="default: WORKDIR/llama.cpp")
    p.add_argument("--llama-ubatch", type=int, default=512, help="llama.cpp n_ubatch (its default 512)")
    p.add_argument("--convert-python", default=None, help="interpreter for convert_hf_to_gguf.py (gguf installed)")
    p.add_argument("--ratio-against", default="llama.cpp-Q8_0", help="the row the ratio columns divide by")
    p.add_argument("--docs", type=int, default=100)
    p.add_argument("--long-tokens", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1,
                   help="run every row this many times, interleaved (fresh process each time; latencies pooled)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--breakdown", action="store_true", help="weights as stored, activation peak per batch")
    p.add_argument("--sessions", type=int, default=0, help="N rerankers of one artifact in one process")
    p.add_argument("--sessions-variants", default="default", help="variants for --sessions")
    p.add_argument("--requantize", action="append", default=[],
                   help="NAME:DTYPE:key=value;... an extra artifact quantized from the fp32 one with a changed "
                        "plan, e.g. int4-acc1:int4:accuracy_level=1 (repeatable)")
    p.add_argument("--rebuild", action="store_true", help="re-export artifacts")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is None and args.shape is None:
        p.error("--shape is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(CHILDREN, args.child)
    workdir = args.workdir.resolve()
    checkpoint = make_model(args.shape, workdir / "models" / (args.shape + (f"-L{args.layers}" if args.layers else "")),
                            layers=args.layers)
    config = json.loads((checkpoint / "config.json").read_text())
    full = full_depth(args.shape)
    cut = config["num_hidden_layers"] != full
    depth_note = (f"**depth cut to {config['num_hidden_layers']} of {full} layers**" if cut
                  else f"full depth ({config['num_hidden_layers']} layers)")
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if "fp32" not in dtypes:
        dtypes.insert(0, "fp32")  # the drift reference
    requant = list(args.requantize)
    plan = _variant_plan(dtypes + [r.split(":")[0] for r in requant],
                         [v.strip() for v in args.variants.split(",") if v.strip()])
    if ("fp32", "default") not in plan:
        plan.insert(0, ("fp32", "default"))
    loadavg_start = loadavg()
    t_start = time.time()
    artifacts = export_artifacts(checkpoint, dtypes, workdir, args.rebuild)
    for spec in requant:
        # In a child: quantizing holds the whole fp32 graph in memory.
        out = _child("requantize", {"fp32": artifacts["fp32"]["path"], "spec": spec, "workdir": str(workdir)},
                        threads=args.threads)
        artifacts[out["name"]] = out["info"]
    works = workloads(checkpoint, [w.strip() for w in args.workloads.split(",")], args.docs, args.long_tokens)

    llama = None
    gguf: dict[str, dict[str, Any]] = {}
    types = [t.strip() for t in args.llama_cpp.split(",") if t.strip()]
    if types:
        import llama_cpp_peer

        cache = args.llama_cpp_cache or workdir / "llama.cpp"
        llama = llama_cpp_peer.build(cache)
        gguf = llama_cpp_peer.convert(llama, checkpoint, types, cache / "gguf", convert_python=args.convert_python)

    result: dict[str, Any] = {"workloads": {}, "stored": {}, "batches": {}, "sessions": {}}
    paths: dict[tuple[str, str], Path] = {}
    for dtype, variant in plan:
        base = Path(artifacts[dtype]["path"])
        layout = next((p for p in variant.split("+") if p in LAYOUT_PARTS), None)
        paths[(dtype, variant)] = relayout(base, layout, workdir / "artifacts" / f"{base.name}-{layout}") \
            if layout else base
    if args.breakdown:
        for name in artifacts:
            result["stored"][name] = stored_weights(Path(artifacts[name]["path"]))

    for wname, work in works.items():
        rows, score_ids = encode_rows(Path(artifacts["fp32"]["path"]), work)
        if types and score_ids is None:
            raise SystemExit("--llama-cpp: llama.cpp scores v2 (Qwen2) models only")
        yes, no = score_ids or (0, 0)
        entry: dict[str, Any] = {"rows": len(rows), "tokens": sum(map(len, rows)), "longest": max(map(len, rows)),
                                 "rows_by_name": {}, "ratio_against": args.ratio_against}
        spec_common = {"query": work["query"], "docs": work["docs"], "max_length": work["max_length"],
                       "threads": args.threads, "repeats": args.repeats, "warmup": args.warmup}
        def measure_onnx(dtype: str, variant: str, common: dict[str, Any] = spec_common) -> dict[str, Any]:
            row = _child("onnx", {**common, "artifact": str(paths[(dtype, variant)]), "variant": variant},
                         threads=args.threads)
            return {"dtype": dtype, "variant": variant, **row}

        def measure_llama(t: str, rows: list[list[int]] = rows, yes: int = yes, no: int = no) -> dict[str, Any]:
            import llama_cpp_peer

            assert llama is not None
            row = llama_cpp_peer.score_rows(llama, Path(gguf[t]["path"]), rows, yes_id=yes, no_id=no,
                                            threads=args.threads, budget=4096, max_rows=32,
                                            repeats=args.repeats + args.warmup, ubatch=args.llama_ubatch)
            row["latencies_s"] = row["latencies_s"][args.warmup:]
            return {"gguf_bytes": gguf[t]["bytes"], "rss_after_load": row["rss_after_load_kib"] * 1024, **row}

        jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            (f"onnx-{d}/{v}", lambda d=d, v=v: measure_onnx(d, v)) for d, v in plan]
        jobs += [(f"llama.cpp-{t}", lambda t=t: measure_llama(t)) for t in types]
        # Rounds interleave the rows (A B C A B C), so a change in the machine's load hits every row alike.
        for r in range(args.rounds):
            for name, measure in jobs:
                _log(f"{wname}: {name} (round {r + 1}/{args.rounds})")
                before = loadavg()
                row = {"name": name, "loadavg_before": before, **measure(), "loadavg_after": loadavg()}
                old = entry["rows_by_name"].get(name)
                if old is None:
                    row["rounds"] = [{k: row[k] for k in ("latencies_s", "peak_rss", "loadavg_before")}]
                    entry["rows_by_name"][name] = row
                else:
                    old["rounds"].append({k: row[k] for k in ("latencies_s", "peak_rss", "loadavg_before")})
                    old["latencies_s"] = old["latencies_s"] + row["latencies_s"]
                    old["peak_rss"] = max(old["peak_rss"], row["peak_rss"])
        ref = entry["rows_by_name"]["onnx-fp32/default"]
        for row in entry["rows_by_name"].values():
            _summary(row, ref)
        if args.breakdown and wname == "docs":
            for dtype in artifacts:
                _log(f"{wname}: activations per batch, {dtype}")
                result["batches"][f"{dtype}/{wname}"] = _child(
                    "batches", {**spec_common, "artifact": artifacts[dtype]["path"], "variant": "default"},
                    threads=args.threads)
        if args.sessions and wname == "docs":
            for dtype in artifacts:
                for variant in [v.strip() for v in args.sessions_variants.split(",") if v.strip()]:
                    layout = next((p for p in variant.split("+") if p in LAYOUT_PARTS), None)
                    base = Path(artifacts[dtype]["path"])
                    path = relayout(base, layout, workdir / "artifacts" / f"{base.name}-{layout}") if layout else base
                    _log(f"{wname}: {args.sessions} sessions, {dtype}/{variant}")
                    result["sessions"][f"{dtype}/{variant}"] = _child(
                        "sessions", {**spec_common, "artifact": str(path), "variant": variant,
                                     "sessions": args.sessions}, threads=args.threads)
        result["workloads"][wname] = entry

    result["meta"] = {
        "shape": args.shape, "layers": config["num_hidden_layers"], "full_depth": full,
        "cut_depth": cut, "depth_note": depth_note, "threads": args.threads, "repeats": args.repeats,
        "warmup": args.warmup, "artifacts": artifacts, "gguf": gguf,
        "llama.cpp": None if llama is None else {"version": llama.version},
        "loadavg_start": loadavg_start, "loadavg_end": loadavg(),
        "wall_s": time.time() - t_start, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(),
        "versions": versions(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
