"""Reduced-precision CPU artifacts (int8, int4) made from the exported fp32 graph.

- v2 (Qwen2): weight-only quantization. Every MatMul with a constant weight becomes
  ``com.microsoft.MatMulNBits`` (int8: 8-bit, block 128; int4: 4-bit, block 32; both symmetric, so
  the int8-compute kernels stay exact on AVX2-only CPUs, onnxruntime issue 29853); the
  token-embedding table, which the graph only gathers rows from, becomes a
  ``com.microsoft.GatherBlockQuantized`` (8-bit, block 128 in int8; 4-bit, block 32 in int4); and each
  SwiGLU MLP is split along its intermediate width into 4 slices (:func:`split_mlp`), so its
  [tokens, intermediate] activations exist a quarter at a time. Qwen2 activations quantize badly
  (dynamic int8 drifted 0.45 max on the base-v2 shape), so activations stay float.
- v1 (DeBERTa): dynamic int8 quantization of the MatMuls (DeBERTa takes it well). v1 has no int4
  artifact: refused with ArgumentError.

The score head of v2 is never touched: it is the single row W["1"] - W["0"] of the tied lm_head,
computed in float32 at export time and stored as its own constant (heads.py), so quantizing the
embedding table (the same matrix in the checkpoint) does not change it. fp32 artifacts never come
here: their graph is the exporter's, untouched.

Reduced-precision graphs are saved with their weights in ``model.onnx.data`` at page-aligned offsets
(:func:`save_mappable`), so onnxruntime memory-maps them instead of keeping a parsed copy beside the
pre-packed one.

Why the embedding matters: it is 151,936 x hidden float32 (545 MB for base-v2, 933 MB for
large-v2), more than all the quantized MatMul weights of base-v2 together, and the graph reads only
the rows of the tokens it is given. Measurements behind every choice: benchmarks/RESULTS.md
(memory section) and benchmarks/memory_bench.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mxbai_integrations.artifact import EXTERNAL_DATA_NAME
from mxbai_integrations.errors import ArgumentError

logger = logging.getLogger(__name__)

QUANTIZED_DTYPES = ("int8", "int4")


@dataclass(frozen=True)
class QuantizationPlan:
    """How one dtype is made for one family: the record written into the manifest (created_with).

    ``sensitive_bits`` (v2): the value projection of every attention and the down projection of every
    MLP (:func:`sensitive_matmuls`) get this many bits instead of ``bits``, in blocks of
    ``sensitive_block_size``; llama.cpp's Q4_K_M gives the same two tensors more bits.
    """

    method: str
    bits: int | None = None
    block_size: int | None = None
    symmetric: bool = True
    accuracy_level: int | None = None
    embedding_bits: int | None = None
    embedding_block_size: int | None = None
    mlp_chunks: int = 1
    sensitive_bits: int | None = None
    sensitive_block_size: int | None = None

    def record(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None and not (k == "mlp_chunks" and v == 1)}


# Measured on base-v2 at full depth, 100 documents (benchmarks/memory_bench.py, RESULTS.md "CPU memory"):
# - the 8-bit table (block 128) alone drifts 0.34 max abs, Spearman 0.9994 against fp32, far below the
#   8-bit MatMuls' own drift (2.45); block 32 measured the same (0.51, 0.9996) with 4x the scales.
#   Tables narrower than one block (the 64-wide tiny test model) stay float.
# - splitting the MLP into 4 slices took the int8 peak from 1,099 to 797 MiB (llama.cpp Q8_0: 665).
# - int4 with 8-bit v and down projections (sensitive_bits=8, block 32) and an 8-bit table: Spearman
#   0.916 against fp32 instead of 0.836, at 12 % more time: still below validation's 0.95 on random
#   weights, so not the default (RESULTS.md "int4: mixed precision and the accuracy level").
# accuracy_level 4 lets MLAS run the MatMul in int8 (activations quantized per block on the fly):
# on an AVX-512 VNNI CPU, 8-bit weights ran 1.5x faster than fp32 at level 4, while level 0
# (dequantize to fp32) ran slower than fp32 with the same drift; on an AVX2-only CPU level 4 ran
# slower than fp32 (RESULTS.md), so there the gain of int8 is memory, not time.
PLANS: dict[tuple[str, str], QuantizationPlan] = {
    ("v2", "int8"): QuantizationPlan(method="MatMulNBits", bits=8, block_size=128, accuracy_level=4,
                                     embedding_bits=8, embedding_block_size=128, mlp_chunks=4),
    ("v2", "int4"): QuantizationPlan(method="MatMulNBits", bits=4, block_size=32, accuracy_level=4,
                                     embedding_bits=4, embedding_block_size=32, mlp_chunks=4),
    ("v1", "int8"): QuantizationPlan(method="onnxruntime.quantize_dynamic", bits=8),
}


def plan_for(family: str, dtype: str) -> QuantizationPlan:
    """The plan for ``(family, dtype)``, or ArgumentError naming what is not built and why."""
    if dtype not in QUANTIZED_DTYPES:
        raise ArgumentError(f"dtype: {dtype!r} is not a quantized dtype; choose one of {QUANTIZED_DTYPES}")
    if family not in ("v1", "v2"):
        raise ArgumentError(f"family: expected 'v1' or 'v2', got {family!r}")
    if (family, dtype) == ("v1", "int4"):
        raise ArgumentError(
            "dtype: 'int4' is built for v2 (Qwen2) models only; v1 (DeBERTa) models are small and their int8 "
            "artifact (dynamic int8 MatMuls) is the CPU choice: use dtype='int8'"
        )
    return PLANS[(family, dtype)]


def _import_nbits_quantizer() -> Any:
    """Import MatMulNBitsQuantizer without letting its module-level ``logging.basicConfig`` stick.

    That call would switch the caller's whole process to INFO logging on first import.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return MatMulNBitsQuantizer


def quantize_blocks(table: np.ndarray, bits: int, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric blockwise quantization of a [rows, cols] float table along its columns.

    Each block of ``block_size`` values gets one float32 scale: the value of largest magnitude maps
    to -2^(bits-1) exactly (as llama.cpp's Q4_0/Q8_0 do), so the whole signed range is used. The
    result is stored unsigned with the implicit zero point 2^(bits-1) of GatherBlockQuantized, two
    values per byte for 4 bits (low nibble first).

    Returns:
        (data uint8 [rows, cols * bits / 8], scales float32 [rows, ceil(cols / block_size)]).
    """
    rows, cols = table.shape
    n_blocks = -(-cols // block_size)
    padded = np.zeros((rows, n_blocks * block_size), dtype=np.float32)
    padded[:, :cols] = table
    blocks = padded.reshape(rows, n_blocks, block_size)
    lo, hi = blocks.min(axis=-1), blocks.max(axis=-1)
    extreme = np.where(-lo > hi, lo, hi)  # signed value of largest magnitude per block
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    scales = (extreme / qmin).astype(np.float32)
    safe = np.where(scales == 0, 1.0, scales)[..., None]
    q = np.clip(np.rint(blocks / safe), qmin, qmax).astype(np.int16).reshape(rows, -1)[:, :cols]
    unsigned = (q - qmin).astype(np.uint8)
    if bits == 4:
        if cols % 2:
            unsigned = np.concatenate([unsigned, np.full((rows, 1), -qmin, np.uint8)], axis=1)
        unsigned = (unsigned[:, 0::2] | (unsigned[:, 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(unsigned), scales


def dequantize_blocks(data: np.ndarray, scales: np.ndarray, bits: int, block_size: int, cols: int) -> np.ndarray:
    """Inverse of :func:`quantize_blocks` (what GatherBlockQuantized computes for each gathered row)."""
    if bits == 4:
        data = np.stack([data & 0x0F, data >> 4], axis=-1).reshape(data.shape[0], -1)
    q = data[:, :cols].astype(np.float32) - 2 ** (bits - 1)
    return q * np.repeat(scales, block_size, axis=1)[:, :cols]


def _initializer_consumers(graph: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _is_row_gather(node: Any, table: str) -> bool:
    """True for an ONNX ``Gather`` that reads rows (axis 0) of ``table`` and nothing else of it."""
    if node.op_type != "Gather" or node.domain not in ("", "ai.onnx") or node.input[0] != table:
        return False
    if table in list(node.input)[1:]:
        return False
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    return axis == 0


def quantize_embeddings(model: Any, bits: int, block_size: int) -> list[dict[str, object]]:
    """Replace each gathered float table by ``com.microsoft.GatherBlockQuantized`` in place.

    A table qualifies when it is a 2-D float32 initializer at least one block wide and every node
    that reads it is a row Gather (axis 0): a table also read by a MatMul (an lm_head tied in the
    graph) stays float. Returns one record per table (name, shape, bytes before/after).
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    consumers = _initializer_consumers(graph)
    by_name = {init.name: init for init in graph.initializer}
    done = []
    for name, init in list(by_name.items()):
        users = consumers.get(name, [])
        if init.data_type != TensorProto.FLOAT or len(init.dims) != 2 or init.dims[1] < block_size or not users:
            continue
        if not all(_is_row_gather(n, name) for n in users):
            continue
        table = numpy_helper.to_array(init).astype(np.float32, copy=False)
        data, scales = quantize_blocks(table, bits, block_size)
        q_name, s_name = f"{name}_q{bits}", f"{name}_scales"
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(data, q_name), numpy_helper.from_array(scales, s_name)])
        for node in users:
            replacement = helper.make_node(
                "GatherBlockQuantized", [q_name, node.input[1], s_name], list(node.output),
                name=(node.name or name) + f"_q{bits}", domain="com.microsoft",
                gather_axis=0, quantize_axis=1, block_size=block_size, bits=bits,
            )
            index = list(graph.node).index(node)
            graph.node.remove(node)
            graph.node.insert(index, replacement)
        done.append({"name": name, "shape": [int(d) for d in init.dims], "bytes_fp32": int(table.nbytes),
                     "bytes_quantized": int(data.nbytes + scales.nbytes)})
        del table
    if done and not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return done


def _chunk_bounds(width: int, chunks: int, align: int) -> list[int]:
    """Cut points splitting ``width`` into ``chunks`` near-equal parts on multiples of ``align``."""
    units = -(-width // align)
    cuts = [min(width, round(units * k / chunks) * align) for k in range(chunks + 1)]
    return sorted(set(cuts))


@dataclass(frozen=True)
class _SwiGLU:
    """The nodes of one ``down(silu(gate(h)) * up(h))``, silu written as ``g * sigmoid(g)``."""

    gate: Any
    sigmoid: Any
    silu: Any
    up: Any
    product: Any
    down: Any


def _const_matmul(node: Any, inits: dict[str, Any]) -> bool:
    """True for a MatMul whose right operand is a 2-D initializer (a weight MatMulNBits can take)."""
    return (node is not None and node.op_type == "MatMul" and node.input[1] in inits
            and len(inits[node.input[1]].dims) == 2)


def _swiglu_mlps(graph: Any) -> list[_SwiGLU]:
    """Every SwiGLU MLP of the graph whose intermediates nothing else reads (found by shape, not by name).

    The two exporters name nodes differently, so the pattern is matched on the graph itself. After
    :func:`split_mlp`, each slice is one match.
    """
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers = _initializer_consumers(graph)
    found = []
    for down in graph.node:
        mul = producer.get(down.input[0]) if _const_matmul(down, inits) else None
        if mul is None or mul.op_type != "Mul":
            continue
        a, b = (producer.get(x) for x in mul.input)
        up, act = (a, b) if _const_matmul(a, inits) else (b, a)
        if not _const_matmul(up, inits) or act is None or act.op_type != "Mul":
            continue
        x, y = (producer.get(i) for i in act.input)
        gate, sig = (x, y) if y is not None and y.op_type == "Sigmoid" else (y, x)
        if not _const_matmul(gate, inits) or sig is None or sig.op_type != "Sigmoid" or sig.input[0] != gate.output[0]:
            continue
        if gate.output[0] not in act.input or gate.input[0] != up.input[0]:
            continue
        inner = [gate, sig, act, up, mul]
        if any(len(consumers.get(n.output[0], [])) != (2 if n is gate else 1) for n in inner):
            continue  # an intermediate is read elsewhere: leave this MLP as it is
        found.append(_SwiGLU(gate=gate, sigmoid=sig, silu=act, up=up, product=mul, down=down))
    return found


# Ops a value projection's output passes through on its way into the attention (bias, head layout).
_PASS_THROUGH = {"Add", "Reshape", "Transpose", "Cast", "Identity", "Squeeze", "Unsqueeze"}


def _value_projections(graph: Any) -> list[Any]:
    """The value projection MatMul of every GroupQueryAttention: the one weight MatMul behind its value input.

    Walks back from the attention's third input through bias adds and reshapes only; an attention
    whose value comes from anything else (or from two weight MatMuls) is left out.
    """
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    found = []
    for attn in graph.node:
        if attn.op_type != "GroupQueryAttention" or len(attn.input) < 3 or not attn.input[2]:
            continue
        stack, seen, matmuls = [attn.input[2]], set(), []
        while stack:
            node = producer.get(stack.pop())
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if _const_matmul(node, inits):
                matmuls.append(node)
            elif node.op_type in _PASS_THROUGH:
                stack.extend(i for i in node.input if i)
        if len(matmuls) == 1:
            found.append(matmuls[0])
    return found


def sensitive_matmuls(model: Any) -> list[Any]:
    """The MatMuls a mixed plan gives more bits: each attention's value and each MLP's down projection.

    These are the tensors llama.cpp's Q4_K_M gives more bits (attn_v, ffn_down). They are found by
    the graph's structure, not by node names (which differ between the two exporters), and each
    slice of a split MLP counts. The count lands in the manifest record (``sensitive_matmuls``).
    """
    graph = model.graph
    return [*_value_projections(graph), *(mlp.down for mlp in _swiglu_mlps(graph))]


def split_mlp(model: Any, chunks: int, align: int) -> int:
    """Split each SwiGLU MLP of the graph along its intermediate width into ``chunks`` slices, in place.

    ``down(silu(gate(h)) * up(h))`` becomes the sum over slices c of ``down_c(silu(gate_c(h)) * up_c(h))``:
    the same function (cut on quantization-block boundaries, so the quantized weights are the same
    numbers), but the [tokens, intermediate] activations exist one slice at a time, which bounds the
    activation memory of long rows. Returns the number of MLPs split.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers = _initializer_consumers(graph)

    done = 0
    for mlp in _swiglu_mlps(graph):
        gate, up, down = mlp.gate, mlp.up, mlp.down
        inner = [gate, mlp.sigmoid, mlp.silu, up, mlp.product]
        wg, wu, wd = (numpy_helper.to_array(inits[n.input[1]]) for n in (gate, up, down))
        width = wg.shape[1]
        cuts = _chunk_bounds(width, chunks, align)
        if len(cuts) < 3 or wu.shape[1] != width or wd.shape[0] != width:
            continue
        h, out, base = gate.input[0], down.output[0], down.name or down.output[0]
        new_nodes, new_inits, partial = [], [], []
        for c, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
            tag = f"{base}_mlp{c}"
            for name, w in (("gate", wg[:, lo:hi]), ("up", wu[:, lo:hi]), ("down", wd[lo:hi, :])):
                new_inits.append(numpy_helper.from_array(np.ascontiguousarray(w), f"{tag}_{name}_weight"))
            new_nodes += [
                helper.make_node("MatMul", [h, f"{tag}_gate_weight"], [f"{tag}_g"], name=f"{tag}/gate"),
                helper.make_node("Sigmoid", [f"{tag}_g"], [f"{tag}_s"], name=f"{tag}/sigmoid"),
                helper.make_node("Mul", [f"{tag}_g", f"{tag}_s"], [f"{tag}_silu"], name=f"{tag}/silu"),
                helper.make_node("MatMul", [h, f"{tag}_up_weight"], [f"{tag}_u"], name=f"{tag}/up"),
                helper.make_node("Mul", [f"{tag}_silu", f"{tag}_u"], [f"{tag}_a"], name=f"{tag}/mul"),
                helper.make_node("MatMul", [f"{tag}_a", f"{tag}_down_weight"], [f"{tag}_d"], name=f"{tag}/down"),
            ]
            partial.append(f"{tag}_d")
        acc = partial[0]
        for c, name in enumerate(partial[1:], start=1):
            target = out if c == len(partial) - 1 else f"{base}_mlp_sum{c}"
            new_nodes.append(helper.make_node("Add", [acc, name], [target], name=f"{base}_mlp_add{c}"))
            acc = target
        index = min(list(graph.node).index(n) for n in [*inner, down])
        for n in [*inner, down]:
            graph.node.remove(n)
        for k, n in enumerate(new_nodes):
            graph.node.insert(index + k, n)
        for n in (gate, up, down):
            if len(consumers.get(n.input[1], [])) == 1:
                graph.initializer.remove(inits.pop(n.input[1]))
        graph.initializer.extend(new_inits)
        done += 1
    return done


def save_mappable(model: Any, out_model: Path, *, align: int = 4096, threshold: int = 1024) -> None:
    """Save ``model`` with every weight of ``threshold`` bytes or more in ``model.onnx.data`` at page-aligned offsets.

    onnxruntime memory-maps such external data on the CPU instead of copying it: weights that are
    pre-packed (MatMulNBits) are read once and their file pages released, and the embedding table is
    only paged in for the rows a batch gathers. Inline weights stay in the parsed protobuf for the
    session's life, beside their pre-packed copies (base-v2 int8: 939 MiB resident after load inline,
    496 MiB mapped; benchmarks/memory_bench.py).
    """
    import onnx
    from onnx.external_data_helper import set_external_data

    out_model = Path(out_model)
    data_path = out_model.parent / EXTERNAL_DATA_NAME
    with data_path.open("wb") as f:
        for tensor in model.graph.initializer:
            if not tensor.HasField("raw_data") or len(tensor.raw_data) < threshold:
                continue
            f.write(b"\0" * (-f.tell() % align))
            offset = f.tell()
            f.write(tensor.raw_data)
            set_external_data(tensor, EXTERNAL_DATA_NAME, offset, len(tensor.raw_data))
            tensor.ClearField("raw_data")
            tensor.data_location = onnx.TensorProto.EXTERNAL
    onnx.save_model(model, str(out_model))


def _quantize_v1(plan: QuantizationPlan, fp32_model: Path, out_model: Path) -> dict[str, object]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(fp32_model), str(out_model), weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul"],
    )
    record: dict[str, object] = {**plan.record(), "weight_type": "QInt8", "per_channel": True,
                                 "op_types": ["MatMul"]}
    model = onnx.load(str(out_model))
    if plan.embedding_bits:
        record["embeddings"] = quantize_embeddings(model, plan.embedding_bits, plan.embedding_block_size or 32)
    save_mappable(model, out_model)
    record["layout"] = "external data, page-aligned"
    return record


def _named(model: Any, nodes: list[Any]) -> list[Any]:
    """``nodes``, each under a name no other node of the graph carries (the quantizer selects by name).

    A sensitive node with no name, or with a name it shares with any other node (sensitive or not),
    is renamed; otherwise excluding it from the 4-bit pass would exclude its namesakes too.
    """
    counts = Counter(n.name for n in model.graph.node)
    for k, node in enumerate(nodes):
        if node.name and counts[node.name] == 1:
            continue
        counts[node.name] -= 1
        base, i = f"mxbai_sensitive_matmul_{k}", 0
        while counts[f"{base}_{i}"]:
            i += 1
        node.name = f"{base}_{i}"
        counts[node.name] += 1
    return nodes


def _nbits(model: Any, plan: QuantizationPlan, bits: int, block_size: int, exclude: list[str]) -> Any:
    """Every weight MatMul not named in ``exclude`` as ``com.microsoft.MatMulNBits`` of ``bits``; the new model."""
    MatMulNBitsQuantizer = _import_nbits_quantizer()
    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=plan.symmetric,
                                     accuracy_level=plan.accuracy_level, nodes_to_exclude=exclude)
    quiet = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # it logs every node at INFO
    try:
        quantizer.process()
    finally:
        quiet.setLevel(level)
    return quantizer.model.model


def _quantize_v2(plan: QuantizationPlan, fp32_model: Path, out_model: Path) -> dict[str, object]:
    import onnx

    model = onnx.load(str(fp32_model))
    record: dict[str, object] = plan.record()
    if plan.mlp_chunks > 1:
        record["mlps_split"] = split_mlp(model, plan.mlp_chunks, plan.block_size or 128)
    if plan.embedding_bits:
        # First, so the MatMul pass never sees the float table.
        record["embeddings"] = quantize_embeddings(model, plan.embedding_bits, plan.embedding_block_size or 32)
    if plan.bits is not None:  # None: the embedding alone (a benchmark study of its drift)
        later: list[str] = []
        if plan.sensitive_bits is not None:
            later = [n.name for n in _named(model, sensitive_matmuls(model))]
            record["sensitive_matmuls"] = len(later)
        model = _nbits(model, plan, plan.bits, plan.block_size or 128, exclude=later)
        if later:  # second pass: the MatMuls the first one left float, at their own width
            model = _nbits(model, plan, plan.sensitive_bits, plan.sensitive_block_size or plan.block_size or 128,
                           exclude=[])
    record["matmuls"] = sum(1 for n in model.graph.node if n.op_type == "MatMulNBits")
    save_mappable(model, out_model)
    record["layout"] = "external data, page-aligned"
    return record


def quantize(family: str, dtype: str, fp32_model: Path, out_model: Path) -> dict[str, object]:
    """Write the ``dtype`` (int8 or int4) graph made from the fp32 graph ``fp32_model``; return how it was made.

    The returned record goes into the manifest (``created_with.quantization``).

    Raises:
        ArgumentError: a dtype that is not quantized, or int4 for a v1 model.

    Example:
        >>> quantize("v2", "int4", Path("work/model.onnx"), Path("artifact/model.onnx"))  # doctest: +SKIP
        {'method': 'MatMulNBits', 'bits': 4, 'block_size': 32, 'symmetric': True, 'accuracy_level': 4, ...}
    """
    return quantize_with_plan(family, plan_for(family, dtype), fp32_model, out_model)


def quantize_with_plan(family: str, plan: QuantizationPlan, fp32_model: Path, out_model: Path) -> dict[str, object]:
    """:func:`quantize` with an explicit plan (benchmarks compare block sizes, accuracy levels, embedding bits)."""
    if family == "v1":
        return _quantize_v1(plan, Path(fp32_model), Path(out_model))
    return _quantize_v2(plan, Path(fp32_model), Path(out_model))


def quantize_int8(family: str, fp32_model: Path, out_model: Path) -> dict[str, object]:
    """The int8 graph (kept for callers of the earlier name)."""
    return quantize(family, "int8", fp32_model, out_model)
