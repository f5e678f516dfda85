"""Score heads: the forward each exported graph computes, patched onto the loaded model.

Both graphs take ``input_ids`` and ``attention_mask`` and return one float32 ``score`` per row.
The forward is replaced on the instance (not the class) so Optimum's exporter and its output
validation both trace and check exactly the function that ships.
"""

from __future__ import annotations

import types
from typing import Any

import torch

from onnx_export.attention import score_kwargs


def v1_score_forward(model: Any) -> None:
    """DeBERTa-v2 sequence classification: score = the single classifier logit (sigmoid on the host)."""
    original = model.forward

    def forward(self: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> dict:
        logits = original(input_ids=input_ids, attention_mask=attention_mask).logits
        return {"score": logits[:, 0].to(torch.float32)}

    model.forward = types.MethodType(forward, model)


def v2_score_forward(model: Any, yes_id: int, no_id: int, *, fused_attention: bool = True) -> None:
    """Qwen2 causal LM reduced to the reranker's score: (W["1"] - W["0"]) . h_last.

    No KV cache and no full-vocabulary lm_head: only the difference of two lm_head rows is kept,
    applied to the final-norm hidden state of each row's last real token. Position ids come from
    the mask (cumsum - 1), so a row's score does not depend on how much padding it got, and the
    last real token is found in the graph.

    With ``fused_attention`` (the model loaded with ``attn_implementation="mxbai_gqa"``) no [L, L] mask is
    built: attention is causal GroupQueryAttention and rows must be right-padded (see attention.py).
    Without it (eager attention, the 2D mask expanded to [batch, 1, L, L]) left padding works too.
    """
    weight = model.get_output_embeddings().weight.detach()
    head = (weight[yes_id].to(torch.float32) - weight[no_id].to(torch.float32)).contiguous()
    # A plain attribute, not a buffer: a later .half() must not round the head.
    backbone = model.model

    def forward(self: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> dict:
        mask = attention_mask.to(torch.int64)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        if fused_attention:
            masks = {"full_attention": None, "sliding_attention": None}
            hidden = backbone(input_ids=input_ids, attention_mask=masks, position_ids=position_ids, use_cache=False,
                              **score_kwargs(attention_mask)).last_hidden_state
        else:
            hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              use_cache=False).last_hidden_state
        seq_len = input_ids.shape[1]
        last = (torch.arange(seq_len, device=mask.device, dtype=torch.int64)[None, :] * mask).argmax(-1)
        index = last[:, None, None].expand(-1, 1, hidden.shape[-1])
        h_last = hidden.gather(1, index).squeeze(1).to(torch.float32)
        return {"score": h_last @ head}

    model.forward = types.MethodType(forward, model)

