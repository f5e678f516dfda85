"""Score heads: the forward each exported graph computes, patched onto the loaded model.

Both graphs take ``input_ids`` and ``attention_mask`` and return one float32 ``score`` per row.
The forward is replaced on the instance (not the class) so Optimum's exporter and its output
validation both trace and check exactly the function that ships.
"""

from __future__ import annotations

import types
from typing import Any

import torch


def v1_score_forward(model: Any) -> None:
    """DeBERTa-v2 sequence classification: score = the single classifier logit (sigmoid on the host)."""
    original = model.forward

    def forward(self: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> dict:
        logits = original(input_ids=input_ids, attention_mask=attention_mask).logits
        return {"score": logits[:, 0].to(torch.float32)}

    model.forward = types.MethodType(forward, model)


def v2_score_forward(model: Any, yes_id: int, no_id: int) -> None:
    """Qwen2 causal LM reduced to the reranker's score: (W["1"] - W["0"]) . h_last.

    No KV cache and no full-vocabulary lm_head: only the difference of two lm_head rows is kept,
    applied to the final-norm hidden state of each row's last real token. Position ids come from
    the mask (cumsum - 1), so a row's score does not depend on how much padding it got, and the
    last real token is found in the graph, so left and right padding are both correct.
    """
    weight = model.get_output_embeddings().weight.detach()
    head = (weight[yes_id].to(torch.float32) - weight[no_id].to(torch.float32)).contiguous()
    # A plain attribute, not a buffer: a later .half() must not round the head.
    backbone = model.model

    def forward(self: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> dict:
        mask = attention_mask.to(torch.int64)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        seq_len = input_ids.shape[1]
        last = (torch.arange(seq_len, device=mask.device, dtype=torch.int64)[None, :] * mask).argmax(-1)
        index = last[:, None, None].expand(-1, 1, hidden.shape[-1])
        h_last = hidden.gather(1, index).squeeze(1).to(torch.float32)
        return {"score": h_last @ head}

    model.forward = types.MethodType(forward, model)


def _gather_last(att: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``att[b, i, pos[i, j]]`` through one [n, n] index into ``att`` flattened per row.

    torch.gather needs its index expanded to [batch * heads, n, n]; traced to ONNX that index is
    materialised in int64 in every layer (a fifth of DeBERTa's CPU time in onnxruntime). Indexing
    the flattened rows gives the same values with an index shared by all batch rows and heads.
    """
    n, span = att.shape[1], att.shape[2]
    rows = torch.arange(n, device=att.device, dtype=torch.int64)[:, None] * span
    return att.flatten(1)[:, rows + pos]


def _disentangled_attention_bias(
    self: Any, query_layer: torch.Tensor, key_layer: torch.Tensor, relative_pos: torch.Tensor | None,
    rel_embeddings: torch.Tensor, scale_factor: int,
) -> torch.Tensor:
    """transformers' DebertaV2 ``disentangled_attention_bias`` (4.57) with the gathers of ``_gather_last``.

    Only the index arithmetic differs; the values gathered are the same, so the graph stays exact.
    """
    from transformers.models.deberta_v2 import modeling_deberta_v2 as deberta

    if relative_pos is None:
        relative_pos = deberta.build_relative_position(
            query_layer, key_layer, bucket_size=self.position_buckets, max_position=self.max_relative_positions)
    if relative_pos.dim() == 2:
        relative_pos = relative_pos.unsqueeze(0).unsqueeze(0)
    elif relative_pos.dim() == 3:
        relative_pos = relative_pos.unsqueeze(1)
    elif relative_pos.dim() != 4:
        raise ValueError(f"Relative position ids must be of dim 2 or 3 or 4. {relative_pos.dim()}")
    if relative_pos.shape[0] != 1 or relative_pos.shape[1] != 1:
        return self._original_disentangled_attention_bias(
            query_layer, key_layer, relative_pos, rel_embeddings, scale_factor)

    att_span = self.pos_ebd_size
    relative_pos = relative_pos.to(device=query_layer.device, dtype=torch.long)
    rel_embeddings = rel_embeddings[0: att_span * 2, :].unsqueeze(0)
    repeat = query_layer.size(0) // self.num_attention_heads
    if self.share_att_key:
        pos_query_layer = self.transpose_for_scores(self.query_proj(rel_embeddings), self.num_attention_heads)
        pos_key_layer = self.transpose_for_scores(self.key_proj(rel_embeddings), self.num_attention_heads)
        pos_query_layer, pos_key_layer = pos_query_layer.repeat(repeat, 1, 1), pos_key_layer.repeat(repeat, 1, 1)
    else:
        if "c2p" in self.pos_att_type:
            pos_key_layer = self.transpose_for_scores(
                self.pos_key_proj(rel_embeddings), self.num_attention_heads).repeat(repeat, 1, 1)
        if "p2c" in self.pos_att_type:
            pos_query_layer = self.transpose_for_scores(
                self.pos_query_proj(rel_embeddings), self.num_attention_heads).repeat(repeat, 1, 1)

    score: Any = 0
    if "c2p" in self.pos_att_type:
        scale = deberta.scaled_size_sqrt(pos_key_layer, scale_factor)
        c2p_att = torch.bmm(query_layer, pos_key_layer.transpose(-1, -2))
        c2p_pos = torch.clamp(relative_pos + att_span, 0, att_span * 2 - 1)[0, 0]
        score += _gather_last(c2p_att, c2p_pos) / scale.to(dtype=c2p_att.dtype)
    if "p2c" in self.pos_att_type:
        scale = deberta.scaled_size_sqrt(pos_query_layer, scale_factor)
        r_pos = deberta.build_rpos(
            query_layer, key_layer, relative_pos, self.max_relative_positions, self.position_buckets)
        p2c_pos = torch.clamp(-r_pos + att_span, 0, att_span * 2 - 1).reshape(r_pos.shape[-2], r_pos.shape[-1])
        p2c_att = torch.bmm(key_layer, pos_query_layer.transpose(-1, -2))
        score += _gather_last(p2c_att, p2c_pos).transpose(-1, -2) / scale.to(dtype=p2c_att.dtype)
    return score


def v1_shared_position_index(model: Any) -> None:
    """Patch every DeBERTa-v2 attention with ``_disentangled_attention_bias`` (instance level)."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

    for module in model.modules():
        if isinstance(module, DisentangledSelfAttention):
            module._original_disentangled_attention_bias = module.disentangled_attention_bias
            module.disentangled_attention_bias = types.MethodType(_disentangled_attention_bias, module)
