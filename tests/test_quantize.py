"""Reduced-precision CPU artifacts: int4 for v2, the quantized embedding table, and what stays exact."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from safetensors.numpy import load_file

from mxbai_integrations import MxbaiReranker
from mxbai_integrations.artifact import read_manifest
from mxbai_integrations.batching import pad_batch
from mxbai_integrations.errors import ArgumentError
from onnx_export import export_model
from onnx_export.quantize import (
    dequantize_blocks,
    plan_for,
    quantize,
    quantize_embeddings,
    quantize_with_plan,
    sensitive_matmuls,
    split_mlp,
)

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany and a large city with many museums.",
    "The Seine flows through Paris, past the Louvre and Notre-Dame.",
    "Der Eiffelturm steht in Paris. 埃菲尔铁塔位于巴黎。",
    "Bananas are rich in potassium. " * 6,
    "a",
    "Machine learning models rank documents by relevance to a query.",
    "Rome is the capital of Italy.",
]
QUANTIZED_OPS = {"MatMulNBits", "GatherBlockQuantized", "DynamicQuantizeMatMul", "MatMulInteger",
                 "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear"}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _graph(artifact: Path) -> onnx.ModelProto:
    return onnx.load(str(artifact / "model.onnx"))


def _ops(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def _embedding(checkpoint: Path) -> np.ndarray:
    weights = load_file(str(checkpoint / "model.safetensors"))
    return next(v for k, v in weights.items() if k.endswith("embed_tokens.weight")).astype(np.float32)


def _head(model: onnx.ModelProto) -> np.ndarray:
    """The score head: the 1-D float constant the last MatMul applies to the final hidden state."""
    tensors = {t.name: t for t in model.graph.initializer}
    tensors.update({n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"})
    heads = [numpy_helper.to_array(tensors[n.input[1]]) for n in model.graph.node
             if n.op_type == "MatMul" and n.input[1] in tensors and len(tensors[n.input[1]].dims) == 1]
    assert len(heads) == 1, f"expected one 1-D MatMul head, found {len(heads)}"
    return heads[0]


def _quantization(artifact: Path) -> dict:
    return ast.literal_eval(read_manifest(artifact).created_with["quantization"])


def test_int4_v2_validates_and_ranks_like_fp32_and_the_reference(v2_checkpoint, v2_artifact, v2_reference,
                                                                  export_artifact):
    artifact = export_artifact(v2_checkpoint, "int4")
    manifest = read_manifest(artifact)
    assert manifest.dtype == "int4" and manifest.valid
    v = manifest.validation
    assert v.decided_by == "spearman_pooled" and v.token_ids_equal
    assert 0 < v.max_abs_diff_unpadded  # a real drift, recorded
    int4 = np.array(MxbaiReranker(artifact).score(QUERY, DOCS))
    fp32 = np.array(MxbaiReranker(v2_artifact).score(QUERY, DOCS))
    reference = v2_reference.predict([QUERY] * len(DOCS), DOCS).double().numpy()
    assert reference.std() > 0.2, "the tiny model must separate the documents for ranks to mean anything"
    assert _spearman(int4, fp32) >= 0.9
    assert _spearman(int4, reference) >= 0.9
    assert int(np.argmax(int4)) == int(np.argmax(reference))
    assert MxbaiReranker(artifact).providers == ["CPUExecutionProvider"]


def _assert_within_half_a_step(got: np.ndarray, want: np.ndarray, bits: int, block: int) -> np.ndarray:
    """Rows read back from a quantized table against the float rows; returns the step of each value.

    The step of a block is its largest magnitude / 2^(bits-1) (a last, partial block included). Every value
    is within half a step, or one step where it was clipped at the top of the signed range (as in
    Q4_0/Q8_0), and the table really was quantized.
    """
    rows, cols = want.shape
    padded = np.zeros((rows, -(-cols // block) * block), np.float32)
    padded[:, :cols] = want
    step = np.repeat(np.abs(padded.reshape(rows, -1, block)).max(-1), block, axis=1)[:, :cols] / 2 ** (bits - 1)
    err = np.abs(got - want)
    assert np.all(err <= step + 1e-7)
    assert np.mean(err <= step / 2 + 1e-7) > 0.95
    assert err.max() > 0, "the table really is quantized"
    return step


def test_v2_int4_graph_gathers_a_quantized_embedding_and_keeps_the_fp32_head(
        v2_checkpoint, v2_artifact, export_artifact):
    bits, block = 4, 32
    artifact = export_artifact(v2_checkpoint, "int4")
    model = _graph(artifact)
    ops = _ops(model)
    assert {"GatherBlockQuantized", "MatMulNBits"} <= ops
    table = _embedding(v2_checkpoint)
    assert not [t.name for t in model.graph.initializer
                if t.data_type == onnx.TensorProto.FLOAT and list(t.dims) == list(table.shape)], "a float table is left"
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    attrs = {a.name: a.i for a in nbits[0].attribute}
    assert (attrs["bits"], attrs["block_size"]) == (bits, block)
    assert all(len(n.input) < 4 or not n.input[3] for n in nbits), "symmetric: no zero points"

    # The score head is the fp32 row W["1"] - W["0"] of the tied lm_head, untouched by quantizing the table.
    ids = read_manifest(artifact).score.token_ids
    np.testing.assert_array_equal(_head(model), _head(_graph(v2_artifact)))
    np.testing.assert_allclose(_head(model), table[ids["1"]] - table[ids["0"]], rtol=0, atol=1e-7)

    # The gathered rows are the checkpoint's table within half a quantization step of each block.
    gather = next(n for n in model.graph.node if n.op_type == "GatherBlockQuantized")
    inits = {t.name: t for t in model.graph.initializer}
    rows = np.array([0, 1, 42, 9707, 151642, 151935], dtype=np.int64)
    sub = onnx.helper.make_graph(
        [gather], "embedding", [onnx.helper.make_tensor_value_info(gather.input[1], onnx.TensorProto.INT64, [None])],
        [onnx.helper.make_tensor_value_info(gather.output[0], onnx.TensorProto.FLOAT, None)],
        initializer=[inits[gather.input[0]], inits[gather.input[2]]])
    sub_model = onnx.helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    got = ort.InferenceSession(sub_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {gather.input[1]: rows})[0]
    want = table[rows]
    _assert_within_half_a_step(got, want, bits, block)


def test_split_mlp_computes_the_same_function_one_slice_at_a_time(v2_artifact):
    """Each SwiGLU MLP cut along its intermediate width sums to the unsplit MLP (float order aside)."""
    whole = _graph(v2_artifact)
    split = _graph(v2_artifact)
    layers = sum(1 for n in whole.graph.node if n.op_type == "Sigmoid")
    intermediate = 128  # tests/random_models.py's tiny v2 shape
    assert split_mlp(split, chunks=4, align=32) == layers > 0
    widths = sorted({int(t.dims[1]) for t in split.graph.initializer
                     if t.name.endswith("_gate_weight") and len(t.dims) == 2})
    assert widths == [intermediate // 4], "every slice is a quarter of the intermediate width"
    assert sum(n.op_type == "Sigmoid" for n in split.graph.node) == 4 * layers
    onnx.checker.check_model(split)

    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 151_000, n).tolist() for n in (37, 5, 64)]
    ids, mask = pad_batch(rows, 0, side="right")

    def run(model: onnx.ModelProto) -> np.ndarray:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(["score"], {"input_ids": ids, "attention_mask": mask})[0]

    want, got = run(whole), run(split)
    assert np.ptp(want) > 1e-3, "the rows score differently, so a wrong split would show"
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def _nbits_weights(model: onnx.ModelProto) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(bits, weight [K, N] read back, step [K, N]) of every MatMulNBits, from onnxruntime's own layout.

    Symmetric MatMulNBits stores each column's blocks along K with the implicit zero point 2^(bits-1),
    two 4-bit values per byte low nibble first: the layout ``dequantize_blocks`` reads.
    """
    inits = {t.name: t for t in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        a = {x.name: x.i for x in node.attribute}
        k, n, bits, block = a["K"], a["N"], a["bits"], a["block_size"]
        data = numpy_helper.to_array(inits[node.input[1]]).reshape(n, -1)
        scales = numpy_helper.to_array(inits[node.input[2]]).reshape(n, -1)
        weight = dequantize_blocks(data, scales, bits, block, k).T
        out.append((bits, weight, np.abs(np.repeat(scales, block, axis=1)[:, :k].T)))  # scales carry a sign
    return out


def _clash_names(fp32_dir: Path, out_dir: Path) -> Path:
    """A copy of the graph whose attention value projections are named like other weight MatMuls, or not at all.

    Alternately: the name of a q/k/o/gate/up MatMul that must stay 4-bit (the quantizer selects by
    name, so excluding the value projection must not exclude its namesake too), and no name. (The
    down projections are renamed by the MLP split anyway.)
    """
    model = onnx.load(str(fp32_dir / "model.onnx"))
    sensitive = sensitive_matmuls(model)
    inits = {t.name for t in model.graph.initializer}
    weights = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits
               and all(n is not m for m in sensitive)]
    values = [n for n in sensitive if "v_proj" in n.name]
    assert values and weights
    for k, node in enumerate(values):
        node.name = weights[k % len(weights)].name if k % 2 == 0 else ""
    out_dir.mkdir()
    onnx.save(model, str(out_dir / "model.onnx"))
    return out_dir


@pytest.mark.parametrize("exporter", ["default", "torch", "clashing-names"])
def test_mixed_int4_gives_value_and_down_projections_eight_bits(exporter, v2_checkpoint, v2_artifact, tmp_path):
    """sensitive_bits=8: each layer's v_proj and down_proj (every slice of it) are the 8-bit MatMuls, and only they.

    Matched on the weights themselves: each 8-bit MatMul reads back as the checkpoint's v_proj or a
    slice of its down_proj within one quantization step, whatever the exporter named the nodes (the
    torch exporter's graph is checked too, and a graph whose value projections carry other weight
    MatMuls' names or none).
    """
    if exporter == "torch":
        fp32 = export_model(v2_checkpoint, tmp_path / "torch-fp32", exporter="torch", validate=False, progress=False)
    elif exporter == "clashing-names":
        fp32 = _clash_names(v2_artifact, tmp_path / "clash-fp32")
    else:
        fp32 = v2_artifact
    plan = replace(plan_for("v2", "int4"), sensitive_bits=8, sensitive_block_size=32)
    record = quantize_with_plan("v2", plan, fp32 / "model.onnx", tmp_path / "model.onnx")
    weights = load_file(str(v2_checkpoint / "model.safetensors"))
    layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("model.layers.")})
    chunks = plan.mlp_chunks
    assert record["sensitive_matmuls"] == len(layers) * (1 + chunks)

    wanted = {f"v{i}": weights[f"model.layers.{i}.self_attn.v_proj.weight"].T for i in layers}
    wanted |= {f"down{i}": weights[f"model.layers.{i}.mlp.down_proj.weight"].T for i in layers}
    covered: dict[str, int] = {}
    by_bits: dict[int, int] = {}
    for bits, got, step in _nbits_weights(onnx.load(str(tmp_path / "model.onnx"))):
        by_bits[bits] = by_bits.get(bits, 0) + 1
        hits = [(name, lo) for name, w in wanted.items() for lo in range(0, w.shape[0] - got.shape[0] + 1, 32)
                if w.shape[1] == got.shape[1] and np.all(np.abs(w[lo:lo + got.shape[0]] - got) <= step + 1e-7)]
        if bits == 8:
            assert len(hits) == 1, f"an 8-bit MatMul that is not one v_proj / down_proj slice: {hits}"
            covered[hits[0][0]] = covered.get(hits[0][0], 0) + got.shape[0]
        else:
            assert not hits, f"a 4-bit MatMul reads back as {hits}"
    assert covered == {name: w.shape[0] for name, w in wanted.items()}, "every row of every v/down, once"
    assert by_bits == {8: len(layers) * (1 + chunks), 4: len(layers) * (3 + 2 * chunks)}

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    ids, mask = pad_batch([[9707, 11, 1879, 0], [42, 7]], 0, side="right")
    assert np.isfinite(session.run(["score"], {"input_ids": ids, "attention_mask": mask})[0]).all()


@pytest.mark.parametrize(("bits", "block"), [(8, 128), (4, 32)])
def test_onnxruntime_gathers_our_quantized_rows_within_half_a_step(bits, block):
    """quantize_embeddings' table read back by com.microsoft.GatherBlockQuantized: int8's and int4's layouts."""
    rng = np.random.default_rng(1)
    table = (rng.standard_normal((300, 2 * block + block // 2)) * 0.02).astype(np.float32)  # a partial block
    table[7, 3] = 0.5  # an outlier sets its block's step
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Gather", ["table", "ids"], ["rows"])], "g",
        [onnx.helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [None])],
        [onnx.helper.make_tensor_value_info("rows", onnx.TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(table, "table")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    [record] = quantize_embeddings(model, bits, block)
    assert [n.op_type for n in model.graph.node] == ["GatherBlockQuantized"]
    rows, cols = table.shape
    assert record["bytes_quantized"] == rows * (-(-cols * bits // 8) + 4 * -(-cols // block))  # data + fp32 scales

    ids = np.array([0, 7, 150, 299], dtype=np.int64)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"ids": ids})[0]
    want = table[ids]
    step = _assert_within_half_a_step(got, want, bits, block)
    assert np.abs(got[1, 3] - 0.5) <= step[1, 3] / 2 + 1e-7, "the outlier itself is exact to half a step"


def test_fp32_artifact_is_not_quantized_and_matches_the_reference(v2_checkpoint, v2_artifact, v2_reference):
    model = _graph(v2_artifact)
    assert not _ops(model) & QUANTIZED_OPS
    assert "quantization" not in read_manifest(v2_artifact).created_with
    table = next(t for t in model.graph.initializer if t.dims and t.dims[0] == 151936)
    np.testing.assert_array_equal(numpy_helper.to_array(table), _embedding(v2_checkpoint))
    ours = np.array(MxbaiReranker(v2_artifact).score(QUERY, DOCS))
    reference = np.concatenate([v2_reference.predict([QUERY], [d]).double().numpy() for d in DOCS])
    assert np.abs(ours - reference).max() <= 1e-4


def test_int4_is_refused_for_v1_with_a_clear_error(v1_checkpoint, tmp_path):
    with pytest.raises(ArgumentError, match=r"dtype: 'int4' is built for v2 \(Qwen2\) models only.*dtype='int8'"):
        quantize("v1", "int4", tmp_path / "model.onnx", tmp_path / "out.onnx")
    with pytest.raises(ArgumentError, match="dtype: 'int4'"):
        export_model(v1_checkpoint, tmp_path / "v1-int4", dtype="int4", progress=False)
    assert not (tmp_path / "v1-int4").exists()
    assert [p.name for p in tmp_path.iterdir()] == [], "no staging directory left behind"


def test_quantize_refuses_a_float_dtype(tmp_path):
    with pytest.raises(ArgumentError, match="dtype: 'fp16' is not a quantized dtype"):
        quantize("v2", "fp16", tmp_path / "model.onnx", tmp_path / "out.onnx")


@pytest.mark.parametrize(("family", "dtype"), [("v2", "int8"), ("v2", "int4"), ("v1", "int8")])
def test_quantization_is_recorded_in_the_manifest(family, dtype, request, export_artifact):
    checkpoint = request.getfixturevalue(f"{family}_checkpoint")
    artifact = export_artifact(checkpoint, dtype)
    record = _quantization(artifact)
    model = _graph(artifact)
    table = _embedding(checkpoint) if family == "v2" else None
    if family == "v2":
        assert record["method"] == "MatMulNBits" and record["symmetric"] is True
        assert (record["bits"], record["block_size"]) == ((8, 128) if dtype == "int8" else (4, 32))
        assert record["accuracy_level"] in (0, 1, 2, 3, 4)
        assert record["matmuls"] == sum(n.op_type == "MatMulNBits" for n in model.graph.node) > 0
        assert record["mlp_chunks"] == 4
        # Cuts fall on quantization blocks: the tiny MLP (128 wide) is one int8 block, four int4 blocks.
        layers = sum(n.op_type == "GroupQueryAttention" for n in model.graph.node)
        assert record["mlps_split"] == (layers if dtype == "int4" else 0)
        if dtype == "int4":
            [emb] = record["embeddings"]
            assert emb["shape"] == list(table.shape) and emb["bytes_fp32"] == table.nbytes
            assert emb["bytes_quantized"] < table.nbytes / 6
            assert record["embedding_bits"] == 4
        else:  # 8-bit, block 128: the tiny model's 64-wide table is narrower than a block and stays float
            assert (record["embedding_bits"], record["embedding_block_size"]) == (8, 128)
            assert record["embeddings"] == [] and "GatherBlockQuantized" not in _ops(model)
            assert [t for t in model.graph.initializer if list(t.dims) == list(table.shape)]
    else:
        assert record["method"] == "onnxruntime.quantize_dynamic"
        assert "DynamicQuantizeMatMul" in _ops(model) or "MatMulInteger" in _ops(model)
        assert "embeddings" not in record and "GatherBlockQuantized" not in _ops(model)

