"""A leaner DeBERTa-v2 disentangled attention for export: the same scores with less work per layer.

transformers' ``DisentangledSelfAttention`` (4.57) traces to a graph that, in every one of the 12
layers, rebuilds the relative-position index, expands it to int64 [batch * heads, L, L]
(``Expand``), gathers c2p and p2c with it (``GatherElements``), transposes the p2c result
(``Transpose``), divides both [L, L] terms by the scale (``Div``), tiles the position projections
per batch row (``Tile``) and masks with ``Where``. On the CPU those passes over [batch, heads, L, L]
tensors cost as much as a third of a rank() call (benchmarks/RESULTS.md, "CPU: xsmall-v1").

This module patches the loaded fp32 model (instance level, before export) so that:

- the encoder computes the clamped relative-position index once per forward, already expanded to
  [batch, heads, L, L], and all layers share it (ONNX Runtime does not merge the per-layer copies);
- p2c is gathered along the query axis of ``pos_query @ key^T`` with that same index, which is
  exact because DeBERTa's log buckets are odd (``bucket(-x) == -bucket(x)``), so the p2c index is
  the c2p index transposed; this removes the p2c index and the [L, L] ``Transpose``;
- ``1 / scale`` is folded into the query and the position-query projections (small tensors)
  instead of dividing three [L, L] terms;
- the position projections broadcast over the batch in the matmul instead of being tiled;
- the mask is an additive float bias over keys, [batch, 1, 1, L], built once, instead of a
  per-layer ``Where`` with a [batch, 1, L, L] boolean mask. Rows of real tokens get exactly the
  same softmax (a masked key's weight is 0 either way); only the rows of padding tokens, which no
  real token attends to and the score never reads, differ.

The gathered values are the same; only float rounding order differs (scale folded before the
matmul), far below the export tolerance (1e-4 against sentence-transformers). ``ENABLED`` (or
the ``disabled()`` context) switches the patch off, so old and new graphs can be exported from
the same code for A/B measurements (benchmarks/v1_graph_ab.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import types
from collections.abc import Iterator
from typing import Any

import torch

logger = logging.getLogger(__name__)

ENABLED = True
"""Whether ``apply`` patches the model; the A/B benchmark exports the original graph with it off."""


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Export the unpatched (transformers) DeBERTa graph inside this block.

    Examples:
        >>> from onnx_export import deberta_patches
        >>> with deberta_patches.disabled():
        ...     deberta_patches.ENABLED
        False
    """
    global ENABLED
    previous, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = previous


def shared_position_index(encoder: Any, hidden_states: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``clamp(relative_pos + span, 0, 2 * span - 1)`` expanded to [batch, heads, L, L], int64.

    This is transformers' c2p index; by the odd symmetry of the buckets it is also the transposed
    p2c index.
    """
    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

    span = encoder.position_buckets if encoder.position_buckets > 0 else encoder.max_relative_positions
    rel = build_relative_position(hidden_states, hidden_states, bucket_size=encoder.position_buckets,
                                  max_position=encoder.max_relative_positions)
    index = torch.clamp(rel + span, 0, span * 2 - 1)  # [1, L, L]
    batch, length = hidden_states.shape[0], hidden_states.shape[1]
    return index.unsqueeze(1).expand(batch, num_heads, length, length)


def key_mask_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[batch, L] 0/1 mask -> additive bias [batch, 1, 1, L]: 0 on real keys, the dtype's min on padding."""
    keep = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * torch.finfo(dtype).min


def _attention_forward(
    self: Any, hidden_states: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = False,
    query_states: torch.Tensor | None = None, relative_pos: torch.Tensor | None = None,
    rel_embeddings: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``DisentangledSelfAttention.forward`` given the shared index (``relative_pos``) and key bias.

    Called only through the patched encoder, which passes ``attention_mask`` as ``key_mask_bias``
    and ``relative_pos`` as ``shared_position_index``.
    """
    batch, length, _ = hidden_states.shape
    heads = self.num_attention_heads

    def split(x: torch.Tensor) -> torch.Tensor:  # [B, L, H*d] -> [B, H, L, d]
        return x.view(batch, length, heads, -1).transpose(1, 2)

    scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    inv_scale = 1.0 / math.sqrt(self.attention_head_size * scale_factor)
    query = split(self.query_proj(hidden_states)) * inv_scale
    key = split(self.key_proj(hidden_states))
    value = split(self.value_proj(hidden_states))
    scores = torch.matmul(query, key.transpose(-1, -2))  # [B, H, L, L]

    span = self.pos_ebd_size
    rel = self.pos_dropout(rel_embeddings)[0: span * 2, :]

    def heads_of(x: torch.Tensor) -> torch.Tensor:  # [2S, H*d] -> [H, 2S, d]
        return x.view(span * 2, heads, -1).transpose(0, 1)

    if "c2p" in self.pos_att_type:
        pos_key = heads_of(self.key_proj(rel) if self.share_att_key else self.pos_key_proj(rel))
        c2p = torch.matmul(query, pos_key.transpose(-1, -2))  # [B, H, L, 2S]
        scores = scores + torch.gather(c2p, -1, relative_pos)
    if "p2c" in self.pos_att_type:
        pos_query = heads_of(self.query_proj(rel) if self.share_att_key else self.pos_query_proj(rel)) * inv_scale
        p2c_t = torch.matmul(pos_query, key.transpose(-1, -2))  # [B, H, 2S, L]
        scores = scores + torch.gather(p2c_t, -2, relative_pos)
    probs = torch.softmax(scores + attention_mask, dim=-1)
    probs = self.dropout(probs)
    context = torch.matmul(probs, value).transpose(1, 2).reshape(batch, length, -1)
    return context, (probs if output_attentions else None)


def _supported(model: Any) -> str | None:
    """Why the patch does not apply to ``model`` (None when it does)."""
    config = model.config
    if getattr(model, "base_model_prefix", None) != "deberta" or config.model_type != "deberta-v2":
        return f"not a DeBERTa-v2 model ({config.model_type!r})"
    if not getattr(config, "relative_attention", False):
        return "relative_attention is off"
    if getattr(model.deberta, "z_steps", 0):
        return "enhanced mask decoder steps (z_steps) are used"
    if model.dtype != torch.float32:
        # onnxruntime 1.32 segfaults creating a CPU session (optimization level ALL; BASIC and
        # EXTENDED load and run) for the patched fp16 graph. fp16 artifacts are for CUDA/TensorRT,
        # where this rewrite has not been measured, so they keep transformers' graph.
        return f"{model.dtype} graph (the rewrite is for fp32, and int8 made from it)"
    return None


def apply(model: Any) -> bool:
    """Patch a loaded ``DebertaV2ForSequenceClassification`` in place; returns whether it did.

    A no-op (logged) when ``ENABLED`` is off or the architecture is one this rewrite does not cover,
    so the caller can call it unconditionally for family v1.

    Examples:
        >>> from transformers import AutoModelForSequenceClassification  # doctest: +SKIP
        >>> model = AutoModelForSequenceClassification.from_pretrained(path).eval()  # doctest: +SKIP
        >>> apply(model)  # doctest: +SKIP
        True
    """
    if not ENABLED:
        logger.info("DeBERTa attention patch disabled: exporting transformers' graph")
        return False
    reason = _supported(model)
    if reason is not None:
        logger.info("DeBERTa attention patch not applied: %s", reason)
        return False
    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

    encoder = model.deberta.encoder
    attentions = [m for m in encoder.modules() if isinstance(m, DisentangledSelfAttention)]
    num_heads = attentions[0].num_attention_heads
    dtype = encoder.rel_embeddings.weight.dtype

    def get_attention_mask(self: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        if attention_mask.dim() != 2:
            raise ValueError(f"attention_mask: expected [batch, L], got {tuple(attention_mask.shape)}")
        return key_mask_bias(attention_mask, dtype)

    def get_rel_pos(self: Any, hidden_states: torch.Tensor, query_states: Any = None,
                    relative_pos: Any = None) -> torch.Tensor:
        if query_states is not None or relative_pos is not None:
            raise ValueError("the patched DeBERTa encoder takes neither query_states nor relative_pos")
        return shared_position_index(self, hidden_states, num_heads)

    encoder.get_attention_mask = types.MethodType(get_attention_mask, encoder)
    encoder.get_rel_pos = types.MethodType(get_rel_pos, encoder)
    for attention in attentions:
        attention.forward = types.MethodType(_attention_forward, attention)
    logger.info("DeBERTa attention patched: shared position index, key bias, no p2c transpose")
    return True
