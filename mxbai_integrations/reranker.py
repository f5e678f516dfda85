"""MxbaiReranker: the mxbai_rerank API (``rank``, ``score``) over an ONNX artifact, without torch.

The user-facing class is thin: it resolves ``model`` to an artifact (exporting a checkpoint once
on first use), builds a :class:`~mxbai_integrations.scorer.Scorer` and ranks what it scores.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import onnxruntime as ort

from mxbai_integrations import providers as prov
from mxbai_integrations.artifact import Manifest
from mxbai_integrations.checks import check_positive_int
from mxbai_integrations.errors import ArgumentError, NonFiniteScoreError
from mxbai_integrations.options import DEFAULT_BATCH_SIZE, RerankerOptions
from mxbai_integrations.ranking import rank_order
from mxbai_integrations.resolve import resolve_model
from mxbai_integrations.scorer import Scorer

__all__ = ["DEFAULT_BATCH_SIZE", "MxbaiReranker", "NonFiniteScoreError", "RankResult", "Span"]

logger = logging.getLogger(__name__)


class Span(NamedTuple):
    """Characters ``document[start:end]``: the text of the chunk that gave a long document its score."""

    start: int
    end: int


@dataclass
class RankResult:
    """One ranked document: the fields of ``mxbai_rerank.RankResult``, and the winning chunk.

    Attributes:
        index: the document's position in the list given to ``rank``.
        score: its score (v1: a probability; v2: the raw logit, or sigmoid(logit - shift) with
            ``normalize=True``), a Python float.
        document: the document's text, or None with ``return_documents=False``.
        chunk: with ``long_documents="max_chunk"``, the span of the document whose chunk scored
            best (the whole document when it fits one pair); None otherwise.
    """

    index: int
    score: float
    document: str | None = None
    chunk: Span | None = None


def _default_dtype(providers: str | tuple[prov.ProviderSpec, ...]) -> str:
    """fp16 when a GPU provider will be asked for, else fp32 (what a hub id is exported as)."""
    if isinstance(providers, str):
        return "fp16" if any(p in ort.get_available_providers() for p in prov.GPU_PROVIDERS) else "fp32"
    return "fp16" if any(prov.provider_name(p) in prov.GPU_PROVIDERS for p in providers) else "fp32"


class MxbaiReranker:
    """mxbai-rerank v1/v2 on ONNX Runtime: one session, safe to share between threads.

    Args:
        model: artifact directory; hub id of an artifact repo (downloaded into the Hugging Face
            cache, needs the ``hub`` extra) or of a checkpoint; or a local checkpoint (a checkpoint
            is exported into the cache on first use, which needs the ``export`` extra). None reads
            ``MXBAI_RERANK_MODEL``, else mixedbread-ai/mxbai-rerank-base-v2.
        options: a :class:`~mxbai_integrations.options.RerankerOptions`; or give its fields as
            keyword arguments: ``providers`` ("auto": TensorRT -> CUDA -> CPU, or a list),
            ``dtype``, ``batch_size``, ``max_length``, ``max_batch_tokens``, ``allow_fallback``,
            ``revision``, ``cache_dir``, ``intra_op_num_threads``, ``verify``, ``long_documents``,
            ``chunk_stride``, ``max_chunks``.
        session_options: onnxruntime.SessionOptions to use as is.

    Raises:
        ModelNotFoundError: ``model`` is neither an artifact, a checkpoint nor a hub id.
        ArtifactError: the artifact is missing files, corrupt, or its manifest does not hold.
        ProviderError: a requested execution provider is missing or did not attach.
        ArgumentError: a bad option (the message names it).

    Examples:
        >>> from mxbai_integrations import MxbaiReranker
        >>> reranker = MxbaiReranker("./mxbai-rerank-xsmall-v1-onnx", providers=["cpu"], batch_size=16)
        >>> reranker.family, reranker.providers  # doctest: +SKIP
        ('v1', ['CPUExecutionProvider'])
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        options: RerankerOptions | None = None,
        session_options: ort.SessionOptions | None = None,
        **option_values: Any,
    ) -> None:
        if options is not None and option_values:
            raise ArgumentError(f"options: give a RerankerOptions or keyword options, not both "
                                f"(got options= and {sorted(option_values)})")
        # Checked before the model is resolved: a hub id may be exported first, which takes minutes.
        options = options if options is not None else RerankerOptions.from_dict(option_values, where="MxbaiReranker")
        if not isinstance(options, RerankerOptions):
            raise ArgumentError(f"options must be a RerankerOptions, got {type(options).__name__}")
        resolved = resolve_model(model, dtype=options.dtype or _default_dtype(options.providers),
                                 cache_dir=options.cache_dir, revision=options.revision)
        manifest = resolved.manifest
        if options.dtype is not None and manifest.dtype != options.dtype:
            raise ArgumentError(f"dtype: asked for {options.dtype!r} but the artifact at {str(resolved.path)!r} "
                                f"is {manifest.dtype!r}")
        if not manifest.valid:
            why = manifest.validation.summary() if manifest.validation is not None else "no validation recorded"
            warnings.warn(f"artifact {resolved.path} was not validated against the reference at export: {why}",
                          UserWarning, stacklevel=2)
        self._scorer = Scorer(resolved.path, manifest, options, session_options=session_options,
                              allowed_root=resolved.allowed_root)

    @classmethod
    def from_scorer(cls, scorer: Scorer) -> MxbaiReranker:
        """Rank with a scorer built elsewhere (no model resolution, no validation warning)."""
        self = cls.__new__(cls)
        self._scorer = scorer
        return self

    # -- what was loaded ---------------------------------------------------------------------------
    @property
    def scorer(self) -> Scorer:
        """The scorer underneath (encode / raw_scores / activate), for servers that batch across requests."""
        return self._scorer

    @property
    def path(self) -> Path:
        return self._scorer.path

    @property
    def manifest(self) -> Manifest:
        return self._scorer.manifest

    @property
    def options(self) -> RerankerOptions:
        return self._scorer.options

    @property
    def family(self) -> str:
        return self._scorer.family

    @property
    def model_id(self) -> str:
        return self._scorer.model_id

    @property
    def providers(self) -> list[str]:
        return self._scorer.providers

    @property
    def max_length(self) -> int:
        return self._scorer.max_length

    @property
    def batch_size(self) -> int:
        return self._scorer.batch_size

    @property
    def max_batch_tokens(self) -> int:
        return self._scorer.max_batch_tokens

    @property
    def session(self) -> ort.InferenceSession:
        """The onnxruntime session (for profiling or inspection; shared, do not reconfigure)."""
        return self._scorer.session

    @property
    def uses_io_binding(self) -> bool:
        """True when batches run through onnxruntime IO binding (CUDA: the score output stays on the device)."""
        return self._scorer.uses_io_binding

    def __deepcopy__(self, memo: dict[int, Any]) -> MxbaiReranker:
        """Copies share this instance: it is immutable after loading and its session is thread-safe."""
        return self

    def __repr__(self) -> str:
        return (f"MxbaiReranker(model={str(self.path)!r}, family={self.family!r}, dtype={self.manifest.dtype!r}, "
                f"providers={self.providers!r})")

    # -- pre-encoded rows (for servers that batch pairs from many queries together) -------------
    def encode(self, query: str, documents: Sequence[str], *, instruction: str | None = None) -> list[list[int]]:
        """Token ids of each (query, document) pair, checked as ``score`` checks its arguments.

        With ``raw_scores`` and ``activate`` this is ``score`` in three steps, so a server can encode
        each request on its own and run the rows of many requests through the model together.
        """
        return self._scorer.encode(query, documents, instruction=instruction)

    def raw_scores(self, rows: Sequence[Sequence[int]], *, batch_size: int | None = None) -> list[float]:
        """The score head's output for encoded rows (any mix of queries), batched by token budget."""
        return [float(x) for x in self._scorer.raw_scores(rows, batch_size=batch_size)]

    def activate(self, raw: Sequence[float], *, normalize: bool = False) -> list[float]:
        """Turn ``raw_scores`` into what ``score`` returns (v1 sigmoid; v2 raw, or sigmoid(x - shift))."""
        return [float(x) for x in self._scorer.activate(raw, normalize=normalize)]

    # -- public API -----------------------------------------------------------------------------
    def score(
        self,
        query: str,
        documents: Sequence[str],
        *,
        instruction: str | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        long_documents: str | None = None,
        chunk_stride: int | None = None,
    ) -> list[float]:
        """Score each document against the query, in the documents' order.

        Args:
            query: the search query (a non-empty string).
            documents: the texts to score; any length (cut to ``max_length`` tokens per pair the way
                the reference cuts them).
            instruction: v2 only: a task instruction placed before the query in the prompt.
            normalize: v2 only: sigmoid(score - shift) (shift 4.5 base, 6.0 large) instead of the raw
                logit; v1 scores are always probabilities.
            batch_size: rows per batch at most (default: the reranker's).
            show_progress: a progress bar over the documents (tokenizing and scoring).
            long_documents: v1 only: "truncate" like the reference, or "max_chunk": score
                overlapping chunks of a long document and keep the best (default: the reranker's).
            chunk_stride: "max_chunk": tokens each chunk repeats from the one before.

        Returns:
            One Python float per document: v1 sigmoid(logit); v2 logit("1") - logit("0").

        Raises:
            ArgumentError / ArgumentTypeError: a bad argument (named); also ValueError / TypeError.
            NonFiniteScoreError: the model returned NaN or inf for some documents (named by index).

        Examples:
            >>> reranker = MxbaiReranker("./tiny-v1-fp32")  # doctest: +SKIP
            >>> reranker.score("what is the capital of france", ["Paris is the capital of France.",
            ...                                                  "Bananas are rich in potassium."])  # doctest: +SKIP
            [0.5395965576171875, 0.27180343866348267]
        """
        scored = self._scorer.score(query, documents, instruction=instruction, normalize=normalize,
                                    batch_size=batch_size, show_progress=show_progress,
                                    long_documents=long_documents, chunk_stride=chunk_stride)
        return [float(x) for x in scored.scores]

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        return_documents: bool = True,
        instruction: str | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        show_progress: bool = False,
        long_documents: str | None = None,
        chunk_stride: int | None = None,
    ) -> list[RankResult]:
        """Rank documents by relevance to the query, best first (ties by input position), as mxbai_rerank does.

        Args:
            query: the search query (a non-empty string).
            documents: the texts to rank.
            top_k: return only the best ``top_k`` (default: all).
            return_documents: put each document's text in its result.
            instruction: v2 only: a task instruction placed before the query in the prompt.
            normalize: v2 only: sigmoid(score - shift) instead of the raw logit.
            batch_size: rows per batch at most (default: the reranker's).
            show_progress: a progress bar over the documents.
            long_documents: v1 only: "truncate" like the reference, or "max_chunk": score
                overlapping chunks of a long document and keep the best (default: the reranker's).
            chunk_stride: "max_chunk": tokens each chunk repeats from the one before.

        Returns:
            ``RankResult(index, score, document, chunk)`` per document, best first; [] for no documents.

        Raises:
            ArgumentError / ArgumentTypeError: a bad argument (named); also ValueError / TypeError.
            NonFiniteScoreError: the model returned NaN or inf for some documents (named by index).

        Examples:
            >>> reranker = MxbaiReranker("./tiny-v1-fp32")  # doctest: +SKIP
            >>> docs = ["Bananas are rich in potassium.", "Paris is the capital of France."]
            >>> reranker.rank("what is the capital of france", docs, top_k=1)  # doctest: +SKIP
            [RankResult(index=1, score=0.5395965576171875, document='Paris is the capital of France.')]
        """
        check_positive_int("top_k", top_k)
        scored = self._scorer.score(query, documents, instruction=instruction, normalize=normalize,
                                    batch_size=batch_size, show_progress=show_progress,
                                    long_documents=long_documents, chunk_stride=chunk_stride)
        docs = list(documents)
        spans = scored.spans
        return [RankResult(index=i, score=float(scored.scores[i]), document=docs[i] if return_documents else None,
                           chunk=Span(*spans[i]) if spans is not None else None)
                for i in rank_order(scored.scores, top_k)]
