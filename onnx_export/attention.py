"""Fused attention for the v2 graph: ONNX Runtime's ``com.microsoft.GroupQueryAttention``, never an [L, L] tensor.

The traced eager attention of transformers materialises a [batch, heads, L, L] float32 score tensor per
layer (8K tokens: 12.9 GB; 16K: out of memory on 24 GB). Here every Qwen2 attention core becomes one
call of a torch custom op, ``mxbai_onnx::gqa``:

- in torch it is ``scaled_dot_product_attention(is_causal=True)``, so the exporters' own output checks
  and our validation still run the real computation;
- both exporters translate it to ``com.microsoft.GroupQueryAttention``, which has a flash-attention
  kernel on the CPU (MLAS, online softmax in float32) and flash / memory-efficient kernels on CUDA:
  the TorchScript exporter (Optimum, transformers < 4.58) through a registered symbolic, and
  ``torch.onnx.export(dynamo=True)`` (transformers 5) through ``custom_translation_table``.

Why causal attention with no padding mask is exact: rows are right-padded (the manifest says so and the
run time pads right), so every real query token only sees real key tokens under the causal mask; the
padded positions compute values nobody reads (the score head reads the last real token). GQA also gets
``seqlens_k`` (real length - 1 per row) so its kernel can skip the padded keys.

Example (what ``exporter._load_score_model`` does for v2):

    >>> from onnx_export import attention
    >>> from onnx_export.heads import v2_score_forward
    >>> attention.register()
    >>> model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention.ATTN_IMPLEMENTATION)
    >>> v2_score_forward(model, yes_id, no_id)   # passes seqlens_k / total_sequence_length to every layer
    >>> model(input_ids=ids, attention_mask=mask)["score"]   # torch: SDPA; exported: GroupQueryAttention
"""

from __future__ import annotations

from typing import Any

import torch

ATTN_IMPLEMENTATION = "mxbai_gqa"
OP_NAMESPACE = "mxbai_onnx"
ORT_DOMAIN = "com.microsoft"


@torch.library.custom_op(f"{OP_NAMESPACE}::gqa", mutates_args=())
def gqa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    seqlens_k: torch.Tensor,
    total_sequence_length: torch.Tensor,
    num_heads: int,
    kv_num_heads: int,
    scale: float,
) -> torch.Tensor:
    """Causal grouped-query attention in GroupQueryAttention's layout: [batch, L, heads * head_dim]."""
    batch, length, _ = query.shape
    head_dim = query.shape[-1] // num_heads
    q = query.view(batch, length, num_heads, head_dim).transpose(1, 2)
    k = key.view(batch, length, kv_num_heads, head_dim).transpose(1, 2)
    v = value.view(batch, length, kv_num_heads, head_dim).transpose(1, 2)
    groups = num_heads // kv_num_heads
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    # The aten op, not F.scaled_dot_product_attention: Optimum's exporter patches the latter.
    out = torch.ops.aten.scaled_dot_product_attention.default(q, k, v, None, 0.0, True, scale=scale)
    return out.transpose(1, 2).reshape(batch, length, num_heads * head_dim).contiguous()


@gqa.register_fake
def _gqa_fake(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, seqlens_k: torch.Tensor,
              total_sequence_length: torch.Tensor, num_heads: int, kv_num_heads: int, scale: float) -> torch.Tensor:
    return query.new_empty(query.shape)


def gqa_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    *,
    seqlens_k: torch.Tensor | None = None,
    total_sequence_length: torch.Tensor | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """A transformers attention function (``AttentionInterface``) that calls the fused op.

    transformers hands over query/key/value as [batch, heads, L, head_dim] after the rotary embedding;
    GroupQueryAttention wants [batch, L, heads * head_dim]. The result goes back as [batch, L, heads, dim].
    """
    if seqlens_k is None or total_sequence_length is None:
        raise ValueError("the mxbai_gqa attention needs seqlens_k and total_sequence_length (the v2 score head "
                         "passes them); it cannot run inside a plain transformers forward")
    batch, num_heads, length, head_dim = query.shape
    kv_heads = key.shape[1]
    scale = float(scaling if scaling is not None else head_dim**-0.5)
    out = gqa(query.transpose(1, 2).reshape(batch, length, num_heads * head_dim),
              key.transpose(1, 2).reshape(batch, length, kv_heads * head_dim),
              value.transpose(1, 2).reshape(batch, length, kv_heads * head_dim),
              seqlens_k, total_sequence_length, num_heads, kv_heads, scale)
    return out.view(batch, length, num_heads, head_dim), None


def register() -> None:
    """Make ``attn_implementation="mxbai_gqa"`` known to transformers and the op known to both exporters."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, gqa_attention_forward)
    _register_torchscript_symbolic()


def _register_torchscript_symbolic() -> None:
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    def symbolic(g: Any, query: Any, key: Any, value: Any, seqlens_k: Any, total_sequence_length: Any,
                 num_heads: Any, kv_num_heads: Any, scale: Any) -> Any:
        none = symbolic_helper._optional_input_placeholder_tensor(g)
        out = g.op(
            f"{ORT_DOMAIN}::GroupQueryAttention", query, key, value, none, none, seqlens_k, total_sequence_length,
            num_heads_i=symbolic_helper._get_const(num_heads, "i", "num_heads"),
            kv_num_heads_i=symbolic_helper._get_const(kv_num_heads, "i", "kv_num_heads"),
            scale_f=symbolic_helper._get_const(scale, "f", "scale"),
            outputs=3,
        )
        result = out[0]
        result.setType(query.type())
        return result

    register_custom_op_symbolic(f"{OP_NAMESPACE}::gqa", symbolic, 1)


def _register_onnx_schema() -> None:
    """Teach ``onnx.defs`` the part of GroupQueryAttention's schema we emit, so onnxscript can build the node.

    onnxscript looks ops up in the ONNX schema registry, which knows only the standard domains; ORT's
    contrib schemas live in onnxruntime's C++ code. This mirrors ORT's definition (contrib_defs, since 1).
    """
    import onnx
    from onnx.defs import OpSchema

    if onnx.defs.has("GroupQueryAttention", ORT_DOMAIN):
        return
    formal = OpSchema.FormalParameter
    optional = OpSchema.FormalParameterOption.Optional
    schema = OpSchema(
        "GroupQueryAttention", ORT_DOMAIN, 1,
        doc="ONNX Runtime contrib op: causal grouped-query attention (mirrored for onnxscript).",
        inputs=[formal("query", "T"), formal("key", "T"), formal("value", "T"),
                formal("past_key", "T", param_option=optional), formal("past_value", "T", param_option=optional),
                formal("seqlens_k", "M"), formal("total_sequence_length", "M")],
        outputs=[formal("output", "T"), formal("present_key", "T"), formal("present_value", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], "float types"),
                          ("M", ["tensor(int32)"], "lengths")],
        attributes=[OpSchema.Attribute("num_heads", OpSchema.AttrType.INT, "query heads"),
                    OpSchema.Attribute("kv_num_heads", OpSchema.AttrType.INT, "key/value heads"),
                    OpSchema.Attribute("scale", OpSchema.AttrType.FLOAT, "1/sqrt(head_size) when 0", required=False)],
    )
    onnx.defs.register_schema(schema)


def dynamo_translation_table() -> dict[Any, Any]:
    """``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``: the op as GroupQueryAttention."""
    from onnxscript.values import Opset

    _register_onnx_schema()
    msft = Opset(ORT_DOMAIN, 1)

    def gqa_onnx(query: Any, key: Any, value: Any, seqlens_k: Any, total_sequence_length: Any,
                 num_heads: int, kv_num_heads: int, scale: float) -> Any:
        out, _, _ = msft.GroupQueryAttention(
            query, key, value, None, None, seqlens_k, total_sequence_length,
            num_heads=num_heads, kv_num_heads=kv_num_heads, scale=scale)
        return out

    return {torch.ops.mxbai_onnx.gqa.default: gqa_onnx}


def score_kwargs(attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """What GroupQueryAttention needs from the mask: per-row ``seqlens_k`` and ``total_sequence_length``."""
    lengths = attention_mask.to(torch.int64).sum(-1)
    return {
        "seqlens_k": (lengths - 1).to(torch.int32),
        "total_sequence_length": _total_length(attention_mask),
    }


def _total_length(attention_mask: torch.Tensor) -> torch.Tensor:
    """The padded length as an int32 scalar computed from the mask's shape, never from its data.

    onnxruntime's CUDA GroupQueryAttention reads ``total_sequence_length`` from CPU memory: taken from
    ``Shape`` it stays on the host, while a value computed from the mask (a ReduceSum) would run on the
    GPU and be copied back, with a stream sync, on every run. It must stay dynamic under both
    exporters: TorchScript tracing bakes a Python int in (hence ``_shape_as_tensor``), and dynamo
    keeps ``shape[1]`` symbolic.
    """
    if torch.jit.is_tracing():
        return torch._shape_as_tensor(attention_mask)[1].to(torch.int32)
    return torch.full((), attention_mask.shape[1], dtype=torch.int32, device=attention_mask.device)
