"""LangChain adapter: ``MxbaiCompressor``, a document compressor that reranks with ``MxbaiReranker``.

    from langchain_classic.retrievers import ContextualCompressionRetriever
    from mxbai_integrations.langchain import MxbaiCompressor

    retriever = ContextualCompressionRetriever(base_compressor=MxbaiCompressor(top_n=5), base_retriever=...)

Needs the ``langchain`` extra (langchain-core).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mxbai_integrations.errors import MissingExtraError

try:
    from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.runnables.config import run_in_executor
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingExtraError(
        'mxbai_integrations.langchain needs langchain-core: pip install "mxbai-integrations[langchain]"'
    ) from exc

from pydantic import ConfigDict, Field, PrivateAttr, field_serializer, model_validator

from mxbai_integrations.adapters import SharedReranker, check_reranker_kwargs, model_to_str, select
from mxbai_integrations.checks import check_query
from mxbai_integrations.reranker import MxbaiReranker

__all__ = ["MxbaiCompressor"]

RELEVANCE_SCORE_KEY = "relevance_score"


def _check_documents(documents: Any) -> list[Document]:
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a sequence of Document, got {type(documents).__name__}")
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise TypeError(f"documents[{i}] must be a langchain_core Document, got {type(doc).__name__}")
    return list(documents)


class MxbaiCompressor(BaseDocumentCompressor):
    """Rerank retrieved documents with an mxbai reranker on ONNX Runtime and keep the best.

    Returns new ``Document`` objects (``model_copy``), best first, with the same ``id`` and a copy of
    the metadata plus ``metadata["relevance_score"]`` (a float; it replaces an existing value). The
    inputs are never mutated, so the caller's retrieval results stay as they were.

    The reranker is loaded on first use, not at construction, so building a pipeline is free, and
    it is then shared: by concurrent calls, threads and ``copy.deepcopy`` copies of this object.

    Serialisation (``model_dump``, ``model_dump_json``, pickle) writes ``model`` as a string: an
    artifact path or hub id as given, and a ``MxbaiReranker`` instance as its artifact directory
    (``reranker.path``). Loading that back opens the same artifact with the options in
    ``reranker_kwargs``, which are part of the dump; a ready instance's own providers, dtype or
    batch size are not, so set them through ``reranker_kwargs`` when the compressor is serialised.

    Args:
        model: artifact directory, hub id, or a ready ``MxbaiReranker`` (used as is). None reads
            ``MXBAI_RERANK_MODEL``, else the default mxbai-rerank model.
        top_n: keep at most this many documents (None keeps all that pass the threshold).
        score_threshold: drop documents scoring below this, before ``top_n`` is applied. The scale
            is the model's: v1 probabilities, v2 raw logits unless ``normalize``.
        instruction: v2 only: an instruction prepended to the query (a v1 model raises ValueError).
        normalize: v2 only: sigmoid-normalise scores into (0, 1); v1 scores are always probabilities.
        batch_size: rows per ONNX Runtime batch (None: the reranker's default).
        reranker_kwargs: ``MxbaiReranker`` options (``providers``, ``dtype``, ``max_length``,
            ``max_batch_tokens``, ``allow_fallback``, ...) used when the compressor loads ``model``;
            serialised with it. Not allowed with a ready ``MxbaiReranker`` as ``model``.

    Examples:
        >>> compressor = MxbaiCompressor(model="mxbai-rerank-base-v2-onnx", top_n=2,
        ...                              reranker_kwargs={"providers": ["CPUExecutionProvider"], "max_length": 1024})
        >>> [d.metadata["relevance_score"] for d in compressor.compress_documents(docs, "query")]  # doctest: +SKIP
        [3.91, 1.27]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: str | os.PathLike[str] | MxbaiReranker | None = None
    top_n: int | None = Field(default=3, gt=0, strict=True)
    score_threshold: float | None = Field(default=None, strict=True, allow_inf_nan=False)
    instruction: str | None = Field(default=None, strict=True)
    normalize: bool = False
    batch_size: int | None = Field(default=None, gt=0, strict=True)
    reranker_kwargs: dict[str, Any] = Field(default_factory=dict)

    _shared: SharedReranker = PrivateAttr(default_factory=SharedReranker)

    @model_validator(mode="after")
    def _check_reranker_kwargs(self) -> MxbaiCompressor:
        check_reranker_kwargs(self.reranker_kwargs, self.model)
        return self

    @field_serializer("model")
    def _serialize_model(self, model: str | os.PathLike[str] | MxbaiReranker | None) -> str | None:
        return model_to_str(model)

    @property
    def reranker(self) -> MxbaiReranker:
        """The shared ``MxbaiReranker``, created on first access (thread-safe: one session per compressor)."""
        return self._shared.get(self.model, self.reranker_kwargs)

    def _rerank(self, documents: list[Document], query: str) -> list[Document]:
        if not documents:
            return []
        results = self.reranker.rank(
            query,
            [doc.page_content for doc in documents],
            return_documents=False,
            instruction=self.instruction,
            normalize=self.normalize,
            batch_size=self.batch_size,
        )
        out = []
        for r in select(results, score_threshold=self.score_threshold, top_n=self.top_n):
            doc = documents[r.index]
            metadata = {**doc.metadata, RELEVANCE_SCORE_KEY: float(r.score)}
            out.append(doc.model_copy(update={"metadata": metadata}))
        return out

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query``; the step is reported to ``callbacks`` as a chain run.

        Args:
            documents: the retrieved documents (not modified).
            query: the search query (a non-empty string).
            callbacks: LangChain callbacks; tracers see a "MxbaiCompressor" run with its inputs and output.

        Returns:
            New documents, best first, after ``score_threshold`` and then ``top_n``.
        """
        docs = _check_documents(documents)
        query = check_query(query)
        manager = CallbackManager.configure(inheritable_callbacks=callbacks)
        run = manager.on_chain_start(None, {"query": query, "documents": docs}, name=type(self).__name__)
        try:
            out = self._rerank(docs, query)
        except BaseException as exc:
            run.on_chain_error(exc)
            raise
        run.on_chain_end({"documents": out})
        return out

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Like ``compress_documents``, with loading and scoring in a worker thread so the loop keeps running."""
        docs = _check_documents(documents)
        query = check_query(query)
        manager = AsyncCallbackManager.configure(inheritable_callbacks=callbacks)
        run = await manager.on_chain_start(None, {"query": query, "documents": docs}, name=type(self).__name__)
        try:
            out = await run_in_executor(None, self._rerank, docs, query)
        except BaseException as exc:
            await run.on_chain_error(exc)
            raise
        await run.on_chain_end({"documents": out})
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the configuration only (``model`` as a string); the copy loads its reranker on first use."""
        return (type(self).model_validate, (self.model_dump(),))
