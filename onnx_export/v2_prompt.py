"""The mxbai-rerank 0.1.6 v2 prompt, tokenized with the checkpoint's own tokenizer for the manifest.

The exporter passes the checkpoint's tokenizer.json as a ``tokenizers.Tokenizer`` (never a tokenizer
rebuilt by the installed transformers), so the manifest's prompt ids are the checkpoint's.

These strings are the reference's class attributes (``mxbai_rerank.MxbaiRerankV2``); a test pins
them against the installed reference so a drift in either shows up at once.
"""

from __future__ import annotations

from typing import Any

from mxbai_integrations.artifact import PromptSpec

SEP = "\n"
INSTRUCTION_TEMPLATE = "instruction: {instruction}"
QUERY_TEMPLATE = "query: {query}"
DOCUMENT_TEMPLATE = "document: {document}"
TASK_PROMPT = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
CHAT_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
)
CHAT_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
YES, NO = "1", "0"
DEFAULT_MAX_LENGTH = 8192

# sigmoid(x - estimated_max / 2), estimated_max as in mxbai-rerank 0.1.6 (12.0 for unknown models).
NORMALIZE_SHIFT_BY_ID = {
    "mixedbread-ai/mxbai-rerank-base-v2": 4.5,
    "mixedbread-ai/mxbai-rerank-large-v2": 6.0,
}
NORMALIZE_SHIFT_BY_HIDDEN = {896: 4.5, 1536: 6.0}
DEFAULT_NORMALIZE_SHIFT = 6.0


def _ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text`` without special tokens, from a ``tokenizers.Tokenizer`` (the checkpoint's own
    file, as the exporter passes it) or a transformers tokenizer (as the reference holds it)."""
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        return list(tokenizer.encode(text, add_special_tokens=False).ids)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_prompt_spec(tokenizer: Any, model_max_length: int) -> PromptSpec:
    """Tokenize the fixed pieces exactly as ``MxbaiRerankV2.prepare_predefined_inputs`` does."""
    return PromptSpec(
        prefix_ids=_ids(tokenizer, CHAT_PREFIX),
        sep_ids=_ids(tokenizer, SEP),
        task_ids=_ids(tokenizer, TASK_PROMPT),
        suffix_ids=_ids(tokenizer, CHAT_SUFFIX),
        sep=SEP,
        query_template=QUERY_TEMPLATE,
        instruction_template=INSTRUCTION_TEMPLATE,
        document_template=DOCUMENT_TEMPLATE,
        query_budget_num=3,
        query_budget_den=4,
        model_max_length=int(model_max_length),
    )


def score_token_ids(tokenizer: Any) -> dict[str, int]:
    """The reference takes the first id of "1" and of "0"."""
    return {YES: _ids(tokenizer, YES)[0], NO: _ids(tokenizer, NO)[0]}


def normalize_shift(source: str, hidden_size: int) -> float:
    """The reference's shift for the hub ids it knows; a local copy is recognised by its width."""
    if source in NORMALIZE_SHIFT_BY_ID:
        return NORMALIZE_SHIFT_BY_ID[source]
    return NORMALIZE_SHIFT_BY_HIDDEN.get(hidden_size, DEFAULT_NORMALIZE_SHIFT)
