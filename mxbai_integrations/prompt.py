"""Token ids for (query, document) pairs, identical to the reference implementations.

v1 follows sentence-transformers / mxbai-rerank v1: ``[CLS] query [SEP] document [SEP]`` with
longest_first truncation. The query is tokenized once per request (not once per document, which
made a 100 KB query over 400 documents cost gigabytes), each document once, and the pair is
assembled here with the tokenizer's own special-token template and the exact longest_first rule
of the ``tokenizers`` library, so the ids equal what the reference's pair encoding gives.
v2 follows ``mxbai_rerank.MxbaiRerankV2.prepare_inputs`` (0.1.6) piece by piece: each text piece
tokenized on its own without special tokens, the query capped at 3/4 of max_length, the document
cut from the right, then the fixed prompt segments (stored as ids in the manifest) around them.

Work per request is bounded by ``max_length``: a query or document far longer than that is cut to
a prefix before tokenizing, and the prefix is verified to give the same leading tokens.

Examples:
    >>> encoder = V1PairEncoder(Tokenizer.from_file("artifact/tokenizer.json"), 512)  # doctest: +SKIP
    >>> query = encoder.query("what is the capital of France?")  # doctest: +SKIP
    >>> encoder.pairs(query, ["Paris is the capital.", "Berlin."])  # doctest: +SKIP
    [[1, 339, ..., 2, 2583, ..., 2], [1, 339, ..., 2, 11745, 260, 2]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tokenizers import Encoding, Tokenizer

from mxbai_integrations.artifact import PromptSpec
from mxbai_integrations.errors import ArgumentError, ArtifactError

# A byte-level BPE token covers at least one byte; one character is at most 4 bytes. A text
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


def longest_first(n_first: int, n_second: int, budget: int) -> tuple[int, int]:
    """How many tokens of each sequence ``longest_first`` keeps, as the ``tokenizers`` library decides.

    The same three cases as ``truncate_encodings`` in tokenizers (src/utils/truncation.rs): no
    cut when both fit; else the longer one is cut to what the shorter leaves; else both are cut
    to about half, the second getting the odd token.
    """
    if n_first + n_second <= budget:
        return n_first, n_second
    if budget == 0:
        return 0, 0
    n1, n2 = n_first, n_second
    swap = n1 > n2
    if swap:
        n1, n2 = n2, n1
    n2 = n1 if n1 > budget else max(n1, budget - n1)
    if n1 + n2 > budget:
        n1 = budget // 2
        n2 = n1 + budget % 2
    if swap:
        n1, n2 = n2, n1
    return min(n1, n_first), min(n2, n_second)


@dataclass(frozen=True)
class PairTemplate:
    """The special tokens a pair post-processor puts before, between and after the two sequences."""

    before: list[int]
    between: list[int]
    after: list[int]

    @property
    def added(self) -> int:
        return len(self.before) + len(self.between) + len(self.after)

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> PairTemplate:
        """Read the template off the tokenizer's own post-processor, on a probe pair."""
        first = tokenizer.encode("a", add_special_tokens=False)
        second = tokenizer.encode("b", add_special_tokens=False)
        pair = tokenizer.post_process(first, second, add_special_tokens=True)
        ids, special = pair.ids, pair.special_tokens_mask
        parts: list[list[int]] = []
        pos = 0
        for sequence in (first.ids, second.ids, []):
            start = pos
            while pos < len(ids) and special[pos]:
                pos += 1
            parts.append(ids[start:pos])
            if ids[pos:pos + len(sequence)] != sequence:
                raise ArtifactError("tokenizer.json: its post-processor does not keep the two sequences of a pair "
                                    "as they are; this is not a cross-encoder tokenizer")
            pos += len(sequence)
        template = cls(*parts)
        expected = len(first.ids) + len(second.ids) + template.added
        if len(pair.ids) != expected or template.added != tokenizer.num_special_tokens_to_add(True):
            raise ArtifactError("tokenizer.json: its post-processor does not put two sequences side by side with "
                                "special tokens around them; this is not a cross-encoder tokenizer")
        return template


@dataclass(frozen=True)
class Query:
    """A query tokenized once for a whole request: what ``query()`` returns and ``pairs()`` takes.

    Attributes:
        ids: the query's token ids (for a cut query: those of its verified prefix).
        exact: False when the text was cut before tokenizing, so ``len(ids)`` is a lower bound.
        text: the query text as given, to measure its true length when a decision needs it.
    """

    ids: list[int]
    exact: bool = True
    text: str = ""


@dataclass(frozen=True)
class Chunk:
    """One chunk of a long document: its row of token ids and where its text starts and ends (characters)."""

    ids: list[int]
    start: int
    end: int


@dataclass(frozen=True)
class _Row:
    ids: list[int]
    kept: int  # document tokens in the row
    encoding: Encoding  # of the (possibly cut) document text
    whole: bool  # the row holds the whole document


def _word_starts(encoding: Encoding, text: str) -> list[tuple[int, int]]:
    """(token index, character offset) of the tokens a chunk may start at: where white space begins a word."""
    out = []
    for i, (start, _) in enumerate(encoding.offsets):
        if i and start < len(text) and text[start].isspace() and not text[start - 1].isspace():
            out.append((i, start))
    return out


class V1PairEncoder:
    """``[CLS] query [SEP] document [SEP]``, longest_first truncation to ``max_length``."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        """Takes ownership of ``tokenizer`` (its truncation and padding are switched off)."""
        self._tok = _plain(tokenizer)
        self.template = PairTemplate.of(self._tok)
        # Below this the tokenizers library stops truncating at all (the budget would be negative),
        # and at it nothing of the query or the document would be left.
        minimum = self.template.added + 2
        if max_length < minimum:
            raise ArgumentError(f"max_length must be at least {minimum} for a v1 model ({self.template.added} "
                                f"special tokens and one token each of query and document), got {max_length}")
        self.max_length = max_length
        self.budget = max_length - self.template.added

    def query(self, query: str, instruction: str | None = None) -> Query:
        """The query's ids, from a verified prefix when it is far longer than a pair can keep."""
        (text,) = cap_texts(self._tok, [query], self.budget)
        return Query(self._tok.encode(text, add_special_tokens=False).ids, exact=text is query, text=query)

    def _length(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def _kept(self, query: Query, doc_ids: list[int], doc_exact: bool, doc_text: str,
              query_length: Callable[[], int]) -> tuple[int, int]:
        """Tokens kept of the query and the document, as longest_first on the full texts decides.

        A cut text's length is only a lower bound, but it is past the budget; the decision needs
        exact lengths only when both sides are past the budget and the bounds cannot tell which
        is longer (the longer one keeps the odd token). Then the cut text is measured in full.
        """
        n_query, n_doc, budget = len(query.ids), len(doc_ids), self.budget
        if (query.exact and doc_exact) or min(n_query, n_doc) <= budget:
            return longest_first(n_query, n_doc, budget)
        known_order = (not query.exact and doc_exact and n_query > n_doc) or (
            query.exact and not doc_exact and n_doc > n_query)
        if not known_order:
            n_query = n_query if query.exact else query_length()
            n_doc = n_doc if doc_exact else self._length(doc_text)
        return longest_first(n_query, n_doc, budget)

    def _rows(self, query: Query, documents: Sequence[str]) -> list[_Row]:
        t = self.template
        docs = cap_texts(self._tok, documents, self.budget)
        measured: list[int] = []

        def query_length() -> int:
            """A cut query's full length: measured once per call, not once per long document."""
            if not measured:
                measured.append(self._length(query.text))
            return measured[0]

        out = []
        for doc, full, enc in zip(docs, documents, self._tok.encode_batch(docs, add_special_tokens=False),
                                  strict=True):
            n_query, n_doc = self._kept(query, enc.ids, doc is full, full, query_length)
            row = t.before + query.ids[:n_query] + t.between + enc.ids[:n_doc] + t.after
            out.append(_Row(row, n_doc, enc, whole=doc is full and n_doc == len(enc.ids)))
        return out

    def pairs(self, query: Query, documents: Sequence[str]) -> list[list[int]]:
        return [r.ids for r in self._rows(query, documents)]

    def chunks(self, query: Query, document: str, *, stride: int, max_chunks: int | None = None) -> list[Chunk]:
        """Overlapping chunks of a document longer than one pair holds, each a row as the reference builds it.

        Chunk ``i`` is the pair (query, the document's text from the chunk's start), truncated by
        longest_first exactly like any other pair, so its score is the reference's score of that
        text; chunk 0 is the row ``pairs`` makes. The next chunk starts ``stride`` tokens (at most half
        a chunk) before the end of this one, moved back to where a word starts; the last one reaches
        the document's end, unless ``max_chunks`` stops earlier.
        """
        full = self._tok.encode(document, add_special_tokens=False)
        starts = _word_starts(full, document)
        chunks: list[Chunk] = []
        token_start, char_start = 0, 0
        while True:
            (row,) = self._rows(query, [document[char_start:]])
            char_end = char_start + (row.encoding.offsets[row.kept - 1][1] if row.kept else 0)
            chunks.append(Chunk(ids=row.ids, start=char_start, end=char_end))
            if row.whole or (max_chunks is not None and len(chunks) >= max_chunks):
                return chunks
            # Suffix token k is (nearly always exactly) document token token_start + k.
            target = min(token_start + max(1, row.kept - min(stride, row.kept // 2)), len(full.ids) - 1)
            if target <= token_start:
                return chunks
            later = [b for b in starts if token_start < b[0] <= target]
            token_start, char_start = later[-1] if later else (target, full.offsets[target][0])


    def encode(self, query: str, documents: Sequence[str], *, instruction: str | None = None) -> list[list[int]]:
        return self.pairs(self.query(query), documents)


class V2PromptEncoder:
    """The mxbai-rerank 0.1.6 v2 prompt, assembled from manifest token-id segments."""

    def __init__(self, tokenizer: Tokenizer, prompt: PromptSpec, max_length: int) -> None:
        """Takes ownership of ``tokenizer`` (truncation and padding are switched off)."""
        self.prompt = prompt
        self._tok = _plain(tokenizer)
        # Same clamp as the reference: the template must fit inside the model's positions.
        self.max_length = min(max_length, prompt.model_max_length - prompt.predefined_length)
        self.query_budget = self.max_length * prompt.query_budget_num // prompt.query_budget_den

    def query(self, query: str, instruction: str | None = None) -> Query:
        """The query part's ids (instruction first, when given), capped at the query budget."""
        p = self.prompt
        text = p.query_template.format(query=query)
        if instruction:
            text = "".join([p.instruction_template.format(instruction=instruction), p.sep, text])
        (text,) = cap_texts(self._tok, [text], self.query_budget)
        return Query(self._tok.encode(text, add_special_tokens=False).ids[: self.query_budget])

    def query_ids(self, query: str, instruction: str | None = None) -> list[int]:
        return list(self.query(query, instruction).ids)

    def pairs(self, query: Query, documents: Sequence[str]) -> list[list[int]]:
        p = self.prompt
        q_ids = query.ids
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

    def encode(self, query: str, documents: Sequence[str], *, instruction: str | None = None) -> list[list[int]]:
        return self.pairs(self.query(query, instruction), documents)


Encoder = V1PairEncoder | V2PromptEncoder
