"""The GPU check's CPU dry run, and everything about the fp16 CUDA path that needs no GPU.

A GPU is lent to this project rarely and for minutes, so ``benchmarks/gpu_check.py`` must still run
when one comes: here it runs end to end on the CPU (``--device cpu --tiny``: the tiny checkpoint,
CPUExecutionProvider, the torch reference in float32 standing in for its fp16/bf16 rows) and must exit
0 and write its JSON. Around it, each property of the exported graph that the CUDA kernels depend on
is checked by reading the graph here, independently of the script's own checker, and the provider
options the reranker builds are checked against the option names onnxruntime-gpu accepts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxscript")
pytest.importorskip("mxbai_rerank")
onnx = pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
SHELL = REPO / "benchmarks" / "gpu_check.sh"
TINY = "tiny-v2"

# Option names the provider option parsers of onnxruntime-gpu 1.31.1 accept, read from
# libonnxruntime_providers_cuda.so / libonnxruntime_providers_tensorrt.so of that wheel (the names
# are those of onnxruntime's CUDA and TensorRT execution provider pages and OrtCUDAProviderOptionsV2).
CUDA_OPTIONS = frozenset({
    "device_id", "gpu_mem_limit", "arena_extend_strategy", "cudnn_conv_algo_search", "do_copy_in_default_stream",
    "gpu_external_alloc", "gpu_external_free", "gpu_external_empty_cache", "cudnn_conv_use_max_workspace",
    "enable_cuda_graph", "cudnn_conv1d_pad_to_nc1d", "tunable_op_enable", "tunable_op_tuning_enable",
    "tunable_op_max_tuning_duration_ms", "enable_skip_layer_norm_strict_mode", "prefer_nhwc",
    "use_ep_level_unified_stream", "use_tf32", "sdpa_kernel", "fuse_conv_bias", "has_user_compute_stream",
})
CUDA_ENUMS = {"arena_extend_strategy": {"kNextPowerOfTwo", "kSameAsRequested"},
              "cudnn_conv_algo_search": {"EXHAUSTIVE", "HEURISTIC", "DEFAULT"}}
TRT_OPTIONS = frozenset({
    "device_id", "has_user_compute_stream", "trt_auxiliary_streams", "trt_bf16_enable",
    "trt_build_heuristics_enable", "trt_builder_optimization_level", "trt_context_memory_sharing_enable",
    "trt_cuda_graph_enable", "trt_detailed_build_log", "trt_dla_core", "trt_dla_enable", "trt_dump_ep_context_model",
    "trt_dump_subgraphs", "trt_engine_cache_enable", "trt_engine_cache_path", "trt_engine_cache_prefix",
    "trt_engine_decryption_enable", "trt_engine_decryption_lib_path", "trt_engine_hw_compatible",
    "trt_ep_context_embed_mode", "trt_ep_context_file_path", "trt_extra_plugin_lib_paths",
    "trt_force_sequential_engine_build", "trt_force_timing_cache", "trt_fp16_enable",
    "trt_int8_calibration_table_name", "trt_int8_enable", "trt_int8_use_native_calibration_table",
    "trt_layer_norm_fp32_fallback", "trt_load_user_initializer", "trt_max_partition_iterations",
    "trt_max_workspace_size", "trt_min_subgraph_size", "trt_onnx_model_folder_path", "trt_op_types_to_exclude",
    "trt_preview_features", "trt_profile_max_shapes", "trt_profile_min_shapes", "trt_profile_opt_shapes",
    "trt_sparsity_enable", "trt_tactic_sources", "trt_timing_cache_enable", "trt_timing_cache_path",
    "trt_weight_stripped_engine_enable",
})
# onnxruntime's ParseStringWithClassicLocale<bool> (include/onnxruntime/core/common/parse_string.h).
ORT_BOOLS = {"0", "1", "True", "False", "true", "false"}
# What may lie between a Shape node and GroupQueryAttention's total_sequence_length for onnxruntime to
# compute it on the CPU (the CUDA kernel declares that input OrtMemTypeCPUInput).
SHAPE_ARITHMETIC = {"Gather", "Squeeze", "Unsqueeze", "Slice", "Cast", "Constant", "Reshape", "Identity"}


@pytest.fixture(scope="module")
def dry_run(v2_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Path, str]]:
    """One run of ``gpu_check.py --device cpu --tiny`` on the tests' tiny v2 checkpoint."""
    root = tmp_path_factory.mktemp("gpu-check")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(root / "out"), "--workdir",
         str(root / "work"), "--checkpoint", str(v2_checkpoint)],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    data = json.loads((root / "out" / "gpu_check.json").read_text())
    yield data, root / "work", proc.stdout
    shutil.rmtree(root, ignore_errors=True)  # two exported artifacts; the disk is shared with the suite


def _artifact(work: Path, dtype: str) -> Path:
    return work / "artifacts" / f"{TINY}-{dtype}"


def _graph(artifact: Path):
    return onnx.load(str(artifact / "model.onnx"), load_external_data=False)


def _rows(data: dict) -> dict[tuple[str, str], dict]:
    return {(r["backend"], r["dtype"]): r for r in data["shapes"][TINY]["summary"]["rows"]}


def test_dry_run_completes_and_writes_json_and_table(dry_run: tuple[dict, Path, str]) -> None:
    data, _, stdout = dry_run
    assert data["status"] == "done"
    assert data["plan"]["mode"] == "tiny" and data["plan"]["device"] == "cpu"
    failed = {k: v["status"] for k, v in data["steps"].items() if not v["status"].startswith("ok")}
    assert not failed, failed
    for step in ("preflight", f"prepare-{TINY}", f"onnx-{TINY}-fp16", f"torch-{TINY}", f"onnx-{TINY}-fp32"):
        assert step in data["steps"], sorted(data["steps"])
    assert set(_rows(data)) == {("ONNX Runtime", "fp16"), ("ONNX Runtime", "fp32"), ("mxbai_rerank", "fp32")}
    # The exporter's own fp16 example check is measured and recorded (enforced by the exporter elsewhere).
    check = data["shapes"][TINY]["prepare"]["exports"]["fp16"]["exporter_example_check"]
    assert check["default_atol"] == 5e-2 and 0 <= check["max_abs_diff"] <= check["default_atol"]
    assert check["default_would_pass"] is True
    # Progress lines carry timestamps, so a run cut off on the device still tells how far it got.
    assert "[gpu_check " in stdout and "step torch-tiny-v2: ok" in stdout


def test_markdown_table_is_written(dry_run: tuple[dict, Path, str]) -> None:
    data, work, _ = dry_run
    md = (work.parent / "out" / "gpu_check.md").read_text()
    assert "TensorRT: not run (not installed on the device)" in md
    assert "| tiny-v2 | ONNX Runtime | fp16 |" in md and "| tiny-v2 | mxbai_rerank | fp32 |" in md
    assert "stands in for" in md  # the CPU substitution is said, not hidden


def test_scores_match_the_reference_on_the_cpu(dry_run: tuple[dict, Path, str]) -> None:
    """The scores the GPU run will compare are right where they can be checked: fp32 to DESIGN.md's 1e-3."""
    data, _, _ = dry_run
    rows = _rows(data)
    fp32 = rows[("ONNX Runtime", "fp32")]["drift_vs_torch_fp32"]
    assert fp32["finite"] and fp32["max_abs"] <= 1e-3 and fp32["spearman"] > 0.999 and fp32["top10_overlap"] == 1.0
    fp16 = rows[("ONNX Runtime", "fp16")]["drift_vs_torch_fp32"]
    assert fp16["finite"] and fp16["spearman"] >= 0.95 and fp16["top10_overlap"] >= 0.9
    assert fp16["n"] == data["plan"]["n_docs"]
    # The long documents: the same token count in both libraries, the same score in fp32.
    torch_long = rows[("mxbai_rerank", "fp32")]["long"]
    for label, item in rows[("ONNX Runtime", "fp16")]["long"].items():
        assert item["status"] == "ok" and item["tokens"] == torch_long[label]["tokens"], (label, item, torch_long)
    assert rows[("ONNX Runtime", "fp32")]["long"]["8K"]["abs_diff"] <= 1e-3


def test_cpu_run_does_not_use_io_binding(dry_run: tuple[dict, Path, str]) -> None:
    """On the CPU the plain run() path is taken; the GPU run checks the other half (run_with_iobinding)."""
    data, _, _ = dry_run
    onnx_fp16 = data["shapes"][TINY]["onnx"]["fp16"]
    assert onnx_fp16["providers"][0] == "CPUExecutionProvider"
    assert onnx_fp16["uses_io_binding"] is False
    assert onnx_fp16["session_calls"]["run"] >= 1 and onnx_fp16["session_calls"]["run_with_iobinding"] == 0


def test_fp16_graph_is_float32_at_the_boundary(dry_run: tuple[dict, Path, str]) -> None:
    _, work, _ = dry_run
    model = _graph(_artifact(work, "fp16"))
    g = model.graph
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in g.initializer), "not an fp16 graph"
    inputs = {i.name: i.type.tensor_type for i in g.input}
    assert sorted(inputs) == ["attention_mask", "input_ids"]
    for t in inputs.values():
        assert t.elem_type == onnx.TensorProto.INT64 and len(t.shape.dim) == 2
        assert all(not d.HasField("dim_value") for d in t.shape.dim), "batch and length must stay dynamic"
    outputs = {o.name: o.type.tensor_type for o in g.output}
    assert list(outputs) == ["score"]
    assert outputs["score"].elem_type == onnx.TensorProto.FLOAT and len(outputs["score"].shape.dim) == 1


def _types(model) -> dict[str, tuple[int, int | None]]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        t = vi.type.tensor_type
        out[vi.name] = (t.elem_type, len(t.shape.dim) if t.HasField("shape") else None)
    return out


def test_group_query_attention_meets_the_cuda_kernel_constraints(dry_run: tuple[dict, Path, str],
                                                                  v2_checkpoint: Path) -> None:
    """onnxruntime's CUDA GroupQueryAttention: fp16/bf16 only; seqlens_k int32; total_sequence_length an int32
    scalar; flash attention needs head_size % 8 == 0 and <= 256 and num_heads % kv_num_heads == 0."""
    _, work, _ = dry_run
    config = json.loads((v2_checkpoint / "config.json").read_text())
    model = _graph(_artifact(work, "fp16"))
    producers = {o: n for n in model.graph.node for o in n.output}
    types = _types(model)
    gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    assert len(gqa) == config["num_hidden_layers"]
    for node in gqa:
        assert node.domain == "com.microsoft"
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["num_heads"] == config["num_attention_heads"]
        assert attrs["kv_num_heads"] == config["num_key_value_heads"]
        assert attrs["num_heads"] % attrs["kv_num_heads"] == 0
        head_size = config["hidden_size"] // config["num_attention_heads"]
        assert head_size % 8 == 0 and head_size <= 256
        assert attrs.get("do_rotary", 0) == 0 and attrs.get("local_window_size", -1) == -1
        query, _, _, past_key, past_value, seqlens_k, total = list(node.input)[:7]
        assert past_key == "" and past_value == "", "no KV cache in a reranker graph"
        assert types[query][0] == onnx.TensorProto.FLOAT16, "the CUDA kernel has no float32 variant"
        for name in (seqlens_k, total):
            cast = producers[name]
            assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.INT32, name
        assert types[total][1] == 0, "total_sequence_length must be a scalar"


def test_fp32_graph_has_no_cuda_attention_kernel_and_the_script_says_so(dry_run: tuple[dict, Path, str]) -> None:
    data, work, _ = dry_run
    model = _graph(_artifact(work, "fp32"))
    types = _types(model)
    gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    assert gqa and all(types[n.input[0]][0] == onnx.TensorProto.FLOAT for n in gqa)
    checks = data["shapes"][TINY]["graph_checks"]
    assert checks["fp32"]["gqa_cuda_kernel"]["ok"] is False and checks["fp16"]["gqa_cuda_kernel"]["ok"] is True


def _shape_computation(graph, name: str) -> tuple[bool, list[str]]:
    producers = {o: n for n in graph.node for o in n.output}
    constants = {i.name for i in graph.initializer}
    seen, stack, ok = [], [name], True
    while stack:
        tensor = stack.pop()
        node = producers.get(tensor)
        if node is None:
            ok = ok and tensor in constants
            continue
        seen.append(node.op_type)
        if node.op_type == "Shape":
            continue
        ok = ok and node.op_type in SHAPE_ARITHMETIC
        stack.extend(i for i in node.input if i)
    return ok, seen


def test_total_sequence_length_comes_from_a_shape_computation(dry_run: tuple[dict, Path, str]) -> None:
    """The CUDA kernel reads total_sequence_length from CPU memory: computed from Shape it stays on the CPU;
    computed from the mask's data (ReduceSum) it is made on the GPU and copied to the host on every run."""
    data, work, _ = dry_run
    model = _graph(_artifact(work, "fp16"))
    gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    ok, seen = _shape_computation(model.graph, gqa[0].input[6])
    assert data["shapes"][TINY]["graph_checks"]["fp16"]["gqa_total_sequence_length_from_shape"]["ok"] is ok
    assert ok, f"total_sequence_length is computed by {seen}: it should come from Shape(attention_mask)"


def test_manifest_says_right_padding(dry_run: tuple[dict, Path, str]) -> None:
    _, work, _ = dry_run
    from mxbai_integrations.artifact import read_manifest

    for dtype in ("fp16", "fp32"):
        raw = json.loads((_artifact(work, dtype) / "mxbai_onnx.json").read_text())
        assert raw["padding_side"] == "right" and read_manifest(_artifact(work, dtype)).padding_side == "right"


# -- the script's own checker must fail on graphs that break a constraint ----------------------------
def _gpu_check_module():
    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    return gpu_check


def _mutated(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    model = _graph(dst)
    edit(model)
    onnx.save(model, str(dst / "model.onnx"))
    return dst


def test_graph_checker_flags_broken_graphs(dry_run: tuple[dict, Path, str], tmp_path: Path) -> None:
    gc = _gpu_check_module()
    _, work, _ = dry_run
    src = _artifact(work, "fp16")
    assert all(c.ok for name, c in gc.check_graph(src).items() if name != "gqa_total_sequence_length_from_shape")

    def gqa_nodes(model):
        return [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]

    def seqlens_int64(model):
        producers = {o: n for n in model.graph.node for o in n.output}
        producers[gqa_nodes(model)[0].input[5]].attribute[0].i = onnx.TensorProto.INT64

    def heads(num_heads: int, kv: int):
        def edit(model):
            for node in gqa_nodes(model):
                for a in node.attribute:
                    if a.name == "num_heads":
                        a.i = num_heads
                    if a.name == "kv_num_heads":
                        a.i = kv
        return edit

    def score_fp16(model):
        model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16

    def fixed_length(model):
        model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 128

    cases = {"gqa_seqlens_k_int32": seqlens_int64, "gqa_head_size": heads(16, 2),  # head size 4
             "gqa_heads_divisible": heads(4, 3), "io_score_float32": score_fp16, "io_inputs_int64": fixed_length}
    for check, edit in cases.items():
        broken = _mutated(src, tmp_path / check, edit)
        assert gc.check_graph(broken)[check].ok is False, check


def test_graph_checker_accepts_total_length_from_shape(dry_run: tuple[dict, Path, str], tmp_path: Path) -> None:
    """The form the CUDA kernel wants: Cast(Squeeze(Shape(attention_mask)[1:2])) feeding every layer."""
    gc = _gpu_check_module()
    _, work, _ = dry_run
    helper = onnx.helper

    def from_shape(model):
        g = model.graph
        nodes = [helper.make_node("Shape", ["attention_mask"], ["gc_len_1d"], start=1, end=2),
                 helper.make_node("Squeeze", ["gc_len_1d"], ["gc_len"]),
                 helper.make_node("Cast", ["gc_len"], ["gc_total"], to=onnx.TensorProto.INT32), *g.node]
        del g.node[:]
        g.node.extend(nodes)
        for node in g.node:
            if node.op_type == "GroupQueryAttention":
                node.input[6] = "gc_total"

    fixed = _mutated(_artifact(work, "fp16"), tmp_path / "fixed", from_shape)
    assert gc.check_graph(fixed)["gqa_total_sequence_length_from_shape"].ok is True
    ok, _ = _shape_computation(_graph(fixed).graph, "gc_total")
    assert ok
    # And the rewired graph still runs and scores like the exported one (onnxruntime on the CPU).
    import numpy as np
    import onnxruntime as ort

    ids = np.array([[151644, 872, 198, 3555, 374, 279, 6722, 30, 151645, 151643]], dtype=np.int64)
    mask = np.ones_like(ids)
    mask[0, -1] = 0
    got = [ort.InferenceSession(str(p / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids, "attention_mask": mask})[0] for p in (_artifact(work, "fp16"), fixed)]
    assert np.allclose(got[0], got[1])


# -- provider options ------------------------------------------------------------------------------------
def _profile(shapes: str) -> dict[str, list[int]]:
    out = {}
    for part in shapes.split(","):
        name, _, dims = part.rpartition(":")
        out[name] = [int(d) for d in dims.split("x")]
    return out


@pytest.mark.parametrize("dtype", ["fp16", "fp32"])
def test_provider_options_are_the_documented_ones(dry_run: tuple[dict, Path, str], tmp_path: Path, dtype: str) -> None:
    from onnxruntime.capi.onnxruntime_inference_collection import check_and_normalize_provider_args

    from mxbai_integrations import providers as prov
    from mxbai_integrations.batching import padded_length

    _, work, _ = dry_run
    graph_inputs = sorted(i.name for i in _graph(_artifact(work, dtype)).graph.input)
    max_length = 4100
    built = prov.with_default_options([prov.TRT, prov.CUDA, prov.CPU], cache_dir=tmp_path, artifact_key="k",
                                      batch_size=16, max_length=max_length, artifact_dtype=dtype)
    names = [prov.provider_name(s) for s in built]
    assert names == [prov.TRT, prov.CUDA, prov.CPU]
    # onnxruntime's own normalisation (what InferenceSession does with them): every value becomes a string.
    available = [prov.TRT, prov.CUDA, prov.CPU]
    _, normalized = check_and_normalize_provider_args(built, None, available)
    options = dict(zip(names, normalized, strict=True))
    assert set(options[prov.CUDA]) <= CUDA_OPTIONS, set(options[prov.CUDA]) - CUDA_OPTIONS
    for key, allowed in CUDA_ENUMS.items():
        if key in options[prov.CUDA]:
            assert options[prov.CUDA][key] in allowed
    trt = options[prov.TRT]
    assert set(trt) <= TRT_OPTIONS, set(trt) - TRT_OPTIONS
    for key, value in trt.items():
        if key.endswith("_enable") or key in ("trt_force_sequential_engine_build", "trt_force_timing_cache"):
            assert value in ORT_BOOLS, (key, value)
    assert trt["trt_fp16_enable"] == ("True" if dtype == "fp16" else "False")
    for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
        if key in trt:
            assert Path(trt[key]).is_dir(), key
    profiles = {k: _profile(trt[f"trt_profile_{k}_shapes"]) for k in ("min", "opt", "max")}
    for kind, shapes in profiles.items():
        assert sorted(shapes) == graph_inputs, (kind, shapes, graph_inputs)
    for name in graph_inputs:
        lo, mid, hi = (profiles[k][name] for k in ("min", "opt", "max"))
        assert len(lo) == len(mid) == len(hi) == 2
        assert all(a <= b <= c for a, b, c in zip(lo, mid, hi, strict=True)), (name, lo, mid, hi)
        assert hi[1] == padded_length(max_length) and hi[1] % 8 == 0 and hi[0] == 16


# -- the device-side shell steps: pieces carried one per call, reassembled, checked ----------------------
def _sh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SHELL), *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **env}, cwd=REPO)


def test_shell_splits_carries_and_reassembles_the_wheel(tmp_path: Path) -> None:
    import hashlib
    import os

    wheel = tmp_path / "onnxruntime_gpu-9.9.9-cp312-cp312-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(os.urandom(300_000))
    src = tmp_path / "src"
    made = _sh("split", str(wheel), env={"GPU_CHECK_WHL": str(src), "GPU_CHECK_PIECE_BYTES": "100000"})
    assert made.returncode == 0, made.stderr
    pieces = sorted((src / "pieces").iterdir())
    assert len(pieces) == 3
    calls = _sh("calls", env={"GPU_CHECK_WHL": str(src)}).stdout.splitlines()
    assert len(calls) == 4 and calls[-1] == "give_back()"
    assert all("gpu_check.sh stash" in c and pieces[i].name in c for i, c in enumerate(calls[:2]))
    assert "gpu_check.sh run" in calls[2] and pieces[2].name in calls[2] and "small" in calls[2]
    # Each call carries one piece; the stash outlives the calls while the machine is warm.
    stash = tmp_path / "stash"
    for i, piece in enumerate(pieces):
        carried = tmp_path / f"call{i}"
        (carried / "pieces").mkdir(parents=True)
        shutil.copy(src / "pieces.sha256", carried)
        shutil.copy(piece, carried / "pieces")
        env = {"GPU_CHECK_WHL": str(carried), "GPU_CHECK_STASH": str(stash)}
        step = _sh("verify" if i == len(pieces) - 1 else "stash", env=env)
        assert step.returncode == 0, step.stderr
    rebuilt = stash / wheel.name
    assert hashlib.sha256(rebuilt.read_bytes()).digest() == hashlib.sha256(wheel.read_bytes()).digest()
    # A machine that went cold in between loses the stash: the run says which pieces are missing.
    (stash / pieces[1].name).unlink()
    lost = _sh("verify", env={"GPU_CHECK_WHL": str(tmp_path / "call2"), "GPU_CHECK_STASH": str(stash)})
    assert lost.returncode == 3 and pieces[1].name in lost.stderr
    (stash / pieces[1].name).write_bytes(b"corrupt")
    bad = _sh("verify", env={"GPU_CHECK_WHL": str(tmp_path / "call2"), "GPU_CHECK_STASH": str(stash)})
    assert bad.returncode == 3 and pieces[1].name in bad.stderr
