"""Token ids for (query, document) pairs, identical to the reference implementations.

v1 follows sentence-transformers / mxbai-rerank v1: ``[CLS] query [SEP] document [SEP]`` with
longest_first truncation, done by the tokenizer's own post-processor and truncation.
v2 follows ``mxbai_rerank.MxbaiRerankV2.prepare_inputs`` (0.1.6) piece by piece: each text piece
tokenized on its own without special tokens, the query capped at 3/4 of max_length, the document
cut from the right, then the fixed prompt segments (stored as ids in the manifest) around them.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer

from mxbai_integrations.artifact import PromptSpec

# A byte-level BPE token covers at least one byte; one character is at most 4 bytes. A document
# longer than this many characters per needed token is cut before tokenizing, then checked.
_CHARS_PER_TOKEN_CAP = 16
# Tokens near a cut can differ from the full text's; demand this many beyond what is kept.
_CUT_MARGIN_TOKENS = 64


def _plain(tokenizer: Tokenizer) -> Tokenizer:
    """Switch off truncation and padding so piece lengths are the untruncated ones (in place)."""
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def cap_texts(tokenizer: Tokenizer, texts: Sequence[str], keep_tokens: int) -> list[str]:
    """Cut very long texts to a prefix whose first ``keep_tokens`` tokens equal the full text's.

    Tokenizing a 1 MB document only to keep its first few thousand tokens wastes most of the
    time; the prefix is verified to yield ``keep_tokens + margin`` tokens, else the full text is
    used, so the ids never differ from the reference's.
    """
    cap = max(keep_tokens, 1) * _CHARS_PER_TOKEN_CAP + 1024
    out = list(texts)
    long_ix = [i for i, t in enumerate(texts) if len(t) > cap]
    if not long_ix:
        return out
    prefixes = [texts[i][:cap] for i in long_ix]
    encs = tokenizer.encode_batch(prefixes, add_special_tokens=False)
    for i, prefix, enc in zip(long_ix, prefixes, encs, strict=False):
        if len(enc.ids) >= keep_tokens + _CUT_MARGIN_TOKENS:
            out[i] = prefix
    return out


class V1PairEncoder:
    """``[CLS] query [SEP] document [SEP]``, longest_first truncation to ``max_length``."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        """Takes ownership of ``tokenizer`` (its truncation settings are changed)."""
        self.max_length = max_length
        # Two configurations: untruncated for measuring pieces, longest_first for the pair.
        self._plain = _plain(Tokenizer.from_str(tokenizer.to_str()))
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length, strategy="longest_first")

    def encode(self, query: str, documents: Sequence[str]) -> list[list[int]]:
        docs = cap_texts(self._plain, documents, self.max_length)
        encodings = self._tok.encode_batch([(query, d) for d in docs], add_special_tokens=True)
        return [enc.ids for enc in encodings]


class V2PromptEncoder:
    """The mxbai-rerank 0.1.6 v2 prompt, assembled from manifest token-id segments."""

    def __init__(self, tokenizer: Tokenizer, prompt: PromptSpec, max_length: int) -> None:
        """Takes ownership of ``tokenizer`` (truncation and padding are switched off)."""
        self.prompt = prompt
        self._tok = _plain(tokenizer)
        # Same clamp as the reference: the template must fit inside the model's positions.
        self.max_length = min(max_length, prompt.model_max_length - prompt.predefined_length)
        self.query_budget = self.max_length * prompt.query_budget_num // prompt.query_budget_den

    def query_ids(self, query: str, instruction: str | None = None) -> list[int]:
        p = self.prompt
        text = p.query_template.format(query=query)
        if instruction:
            text = "".join([p.instruction_template.format(instruction=instruction), p.sep, text])
        return self._tok.encode(text, add_special_tokens=False).ids[: self.query_budget]

    def encode(
        self, query: str, documents: Sequence[str], *, instruction: str | None = None
    ) -> list[list[int]]:
        p = self.prompt
        q_ids = self.query_ids(query, instruction)
        available = p.model_max_length - len(q_ids) - p.predefined_length
        doc_max = min(available, self.max_length)
        # prepare_for_model(q, sep + doc, truncation="only_second", max_length) keeps this many.
        second_max = max(self.max_length - len(q_ids), 0)
        keep = min(doc_max, second_max)
        texts = [p.document_template.format(document=d) for d in documents]
        texts = cap_texts(self._tok, texts, keep)
        head = p.prefix_ids + q_ids
        tail = p.sep_ids + p.task_ids + p.suffix_ids
        out = []
        for enc in self._tok.encode_batch(texts, add_special_tokens=False):
            second = (p.sep_ids + enc.ids[:doc_max])[:second_max]
            out.append(head + second + tail)
        return out
