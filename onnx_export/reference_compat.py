"""Running the v2 reference (mxbai-rerank 0.1.6) on transformers 5, where one tokenizer method is gone.

``MxbaiRerankV2.prepare_inputs`` joins the pre-tokenized query and document with
``tokenizer.prepare_for_model(ids, pair_ids, truncation="only_second", max_length=..., add_special_tokens=False)``.
transformers 5 removed ``prepare_for_model`` from its tokenizers; everything else the reference does
(its prompt, its tokenization of each piece, left padding, the model's own forward with the full
lm_head) still runs. So on transformers 5 the reference gets back exactly that one method, with
transformers 4's semantics for this call: drop tokens from the end of the second sequence until the
pair fits, and leave the pair as it is when the second sequence alone cannot absorb the excess
(transformers 4 logs an error and does not truncate). The validation record names the shim.
"""

from __future__ import annotations

from typing import Any

SHIM_NOTE = "prepare_for_model restored for transformers 5 (only_second truncation, transformers 4 semantics)"


def _prepare_for_model(ids: list[int], pair_ids: list[int] | None = None, *, truncation: Any = False,
                       max_length: int | None = None, **_: Any) -> dict[str, list[int]]:
    pair = list(pair_ids or [])
    if truncation == "only_second" and max_length is not None:
        excess = len(ids) + len(pair) - max_length
        if 0 < excess < len(pair):
            pair = pair[: len(pair) - excess]
    return {"input_ids": list(ids) + pair}


def ensure_prepare_for_model(tokenizer: Any) -> bool:
    """Give ``tokenizer`` the removed method if it lacks it; True when the shim was installed."""
    if hasattr(tokenizer, "prepare_for_model"):
        return False
    tokenizer.prepare_for_model = _prepare_for_model
    return True
