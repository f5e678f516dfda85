"""Token ids as the checkpoint was trained: the checkpoint's own tokenizer as the oracle for ids.

The reference libraries tokenize with whatever transformers is installed, and transformers 5
rebuilds DeBERTa-v2's pipeline from the class instead of taking the checkpoint's tokenizer.json:
on compatibility characters, full-width forms, superscripts and whitespace-only documents it gives
other ids than the checkpoint's own file. So validation takes the ids from the
checkpoint's tokenizer itself, through ``tokenizers`` (never through transformers), with the
reference's own pair rules:

- v1: ``[CLS] query [SEP] document [SEP]`` by the file's post-processor, ``longest_first`` to
  max_length, as ``CrossEncoder`` asks its tokenizer for;
- v2: mxbai-rerank 0.1.6's piecewise prompt (``MxbaiRerankV2.prepare_inputs``): each piece without
  special tokens, the query cut to 3/4 of max_length, the document to what is left, joined by the
  reference's ``prepare_for_model(..., truncation="only_second")`` (``reference_compat``).

This is a second, independent assembly of the same rules (the run time's is
``mxbai_integrations.prompt``, from the manifest's pre-tokenized segments), so the artifact's ids are
checked against something they were not computed with.

Examples:
    >>> from tokenizers import Tokenizer
    >>> tok = Tokenizer.from_file("checkpoint/tokenizer.json")  # doctest: +SKIP
    >>> checkpoint_rows("v1", tok, "what is x?", ["x is y."], max_length=512)  # doctest: +SKIP
    [[1, 339, 269, 1137, 302, 2, 1137, 269, 1253, 260, 2]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mxbai_integrations.errors import ArgumentError
from onnx_export import v2_prompt
from onnx_export.reference_compat import _prepare_for_model

# At most this many characters of the first differing text go into a warning or a record.
_SHOWN_CHARS = 40


def shown(text: str) -> str:
    """A text as it is quoted in warnings and records: repr, cut to a readable length."""
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


@dataclass(frozen=True)
class TokenizerCheck:
    """The artifact's ids on the hard texts against the checkpoint's own tokenizer and the reference's.

    Attributes:
        checkpoint_tokenizer: what the ids were checked against (the checkpoint's tokenizer.json, or
            the conversion of its sentencepiece / BPE files).
        reference_tokenizer: the reference library's tokenizer (installed transformers and class).
        texts: how many hard texts were checked (each as a document and as a query).
        artifact_differs: hard texts where the artifact's ids differ from the checkpoint's (a failure).
        reference_differs: hard texts where the reference library's ids differ from the checkpoint's.
        cases_reference_differs: validation cases where they differ; those were scored by feeding
            the reference model the checkpoint's ids.
        first_difference: the first text the reference tokenizes differently, quoted, or "".
    """

    checkpoint_tokenizer: str
    reference_tokenizer: str
    texts: int
    artifact_differs: list[str] = field(default_factory=list)
    reference_differs: list[str] = field(default_factory=list)
    cases_reference_differs: list[str] = field(default_factory=list)
    first_difference: str = ""

    @property
    def passed(self) -> bool:
        """The artifact's ids equal the checkpoint's on every hard text."""
        return not self.artifact_differs

    @property
    def reference_follows_checkpoint(self) -> bool:
        return not self.reference_differs and not self.cases_reference_differs

    def summary(self) -> str:
        """One line for the manifest and ``info``."""
        text = (f"{self.texts} hard texts: the artifact's ids equal the checkpoint's"
                if self.passed else f"{self.texts} hard texts: the artifact's ids DIFFER from the checkpoint's on "
                f"{len(self.artifact_differs)} ({', '.join(self.artifact_differs[:5])})")
        if self.reference_follows_checkpoint:
            return text + f"; so do the reference's ({self.reference_tokenizer})"
        where = f"{len(self.reference_differs)} of them" if self.reference_differs else "no hard text"
        if self.cases_reference_differs:
            where += f" and in cases {', '.join(self.cases_reference_differs)}"
        return (text + f"; {self.reference_tokenizer} differs on {where} (first: {self.first_difference}), so the "
                "reference was scored on the checkpoint's ids")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerCheck:
        return cls(
            checkpoint_tokenizer=str(data.get("checkpoint_tokenizer", "")),
            reference_tokenizer=str(data.get("reference_tokenizer", "")), texts=int(data.get("texts", 0)),
            artifact_differs=[str(x) for x in data.get("artifact_differs") or []],
            reference_differs=[str(x) for x in data.get("reference_differs") or []],
            cases_reference_differs=[str(x) for x in data.get("cases_reference_differs") or []],
            first_difference=str(data.get("first_difference", "")),
        )


def _plain(tokenizer: Any) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


def _v1_rows(tokenizer: Any, query: str, documents: Sequence[str], max_length: int) -> list[list[int]]:
    """``tokenizer(queries, documents, truncation=True, max_length=...)`` on the checkpoint's own file."""
    tok = _plain(tokenizer)
    tok.enable_truncation(max_length=max_length, strategy="longest_first")
    return [enc.ids for enc in tok.encode_batch([(query, d) for d in documents], add_special_tokens=True)]


def _v2_rows(tokenizer: Any, query: str, documents: Sequence[str], max_length: int, model_max_length: int,
             instruction: str | None) -> list[list[int]]:
    """mxbai-rerank 0.1.6 ``MxbaiRerankV2.prepare_inputs``, step by step, on the checkpoint's own file."""
    tok = _plain(tokenizer)

    def ids(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)

    prefix, sep = ids(v2_prompt.CHAT_PREFIX), ids(v2_prompt.SEP)
    task, suffix = ids(v2_prompt.TASK_PROMPT), ids(v2_prompt.CHAT_SUFFIX)
    predefined = len(prefix) + len(task) + len(suffix) + len(sep)
    if max_length + predefined > model_max_length:  # prepare_predefined_inputs
        max_length = model_max_length - predefined
    query_text = v2_prompt.QUERY_TEMPLATE.format(query=query)
    if instruction:
        query_text = "".join([v2_prompt.INSTRUCTION_TEMPLATE.format(instruction=instruction), v2_prompt.SEP,
                              query_text])
    query_ids = ids(query_text)[: max_length * 3 // 4]
    doc_max = min(model_max_length - len(query_ids) - predefined, max_length)
    rows = []
    for document in documents:
        doc_ids = ids(v2_prompt.DOCUMENT_TEMPLATE.format(document=document))[: max(doc_max, 0)]
        joined = _prepare_for_model(query_ids, sep + doc_ids, truncation="only_second", max_length=max_length)
        rows.append(prefix + joined["input_ids"] + sep + task + suffix)
    return rows


def checkpoint_rows(family: str, tokenizer: Any, query: str, documents: Sequence[str], *, max_length: int,
                    model_max_length: int | None = None, instruction: str | None = None) -> list[list[int]]:
    """The ids the reference would feed its model if it tokenized with the checkpoint's own tokenizer.

    Args:
        family: ``v1`` or ``v2``.
        tokenizer: the checkpoint's tokenizer (``tokenizers.Tokenizer``; it is copied, not changed).
        query: the query.
        documents: the documents.
        max_length: the reference's max_length.
        model_max_length: v2 only, the model's positions (``max_position_embeddings``).
        instruction: v2 only.
    """
    if family == "v1":
        return _v1_rows(tokenizer, query, documents, max_length)
    if model_max_length is None:
        raise ArgumentError("model_max_length: needed for v2 ids (the model's max_position_embeddings)")
    return _v2_rows(tokenizer, query, documents, max_length, model_max_length, instruction)
