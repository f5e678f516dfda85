"""MxbaiReranker: the mxbai_rerank API (``rank``, ``score``) over an ONNX artifact, without torch."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
from tqdm import tqdm

from mxbai_integrations import providers as prov
from mxbai_integrations.artifact import (
    DTYPES,
    MODEL_NAME,
    TOKENIZER_NAME,
    ArtifactError,
    Manifest,
    read_manifest,
    verify_files,
)
from mxbai_integrations.batching import pad_batch, plan_batches
from mxbai_integrations.prompt import V1PairEncoder, V2PromptEncoder
from mxbai_integrations.resolve import cache_root, resolve_artifact

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
# Rows x padded length per batch. On the CPU a small budget is as fast and halves peak memory
# (base-v2 width, 100 documents: 1.7 GB at 4096 against 3.4 GB at 16384); GPUs want larger batches.
DEFAULT_MAX_BATCH_TOKENS_CPU = 4096
DEFAULT_MAX_BATCH_TOKENS_GPU = 16384
_PROGRESS_MIN_BATCHES = 8
# Every released v1 model (DeBERTa-v3 xsmall/base/large) has 512 positions; used when the manifest
# does not record the checkpoint's max_position_embeddings.
V1_MAX_POSITIONS = 512


@dataclass
class RankResult:
    """One ranked document, the same fields as ``mxbai_rerank.RankResult``."""

    index: int
    score: float
    document: str | None = None


class NonFiniteScoreError(RuntimeError):
    """The model returned NaN or inf for some documents: a wrong score is never returned silently.

    A NaN would sort last in ``rank`` and fail every threshold without a word. The known cause is
    overflow in a float16 graph; the fp32 artifact (or the CPU) is the remedy.

    Attributes:
        indices: positions of the affected rows in the caller's order (documents for ``score``).
        dtype: the artifact's dtype.
        provider: the execution provider the session ran on.
    """

    def __init__(self, indices: Sequence[int], *, dtype: str, provider: str) -> None:
        self.indices = [int(i) for i in indices]
        self.dtype = dtype
        self.provider = provider
        shown = self.indices if len(self.indices) <= 20 else [*self.indices[:20], "..."]
        hint = ("; float16 overflow is the usual cause: use the fp32 artifact (dtype='fp32')"
                if dtype == "fp16" else "")
        super().__init__(f"the model returned non-finite scores (NaN or inf) for {len(self.indices)} document(s) "
                         f"at indices {shown} (artifact dtype {dtype}, provider {provider}){hint}")


def _check_positive_int(name: str, value: Any, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")


def check_query(query: Any) -> str:
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query must be a non-empty string")
    return query


def check_documents(documents: Any) -> list[str]:
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a list of str, got {type(documents).__name__}")
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise TypeError(f"documents[{i}] must be a str, got {type(doc).__name__}")
    return list(documents)


class MxbaiReranker:
    """mxbai-rerank v1/v2 on ONNX Runtime: one session, safe to share between threads.

    Args:
        model: artifact directory, hub id or local checkpoint (exported into the cache on first use,
            needs the ``export`` extra); None reads ``MXBAI_RERANK_MODEL``, else mxbai-rerank-base-v2.
        providers: "auto" (TensorRT -> CUDA -> CPU among those available) or an explicit list.
        dtype: which artifact to build/load for a hub id (default fp16 on GPU, fp32 on CPU); for an
            artifact directory, the dtype it must have.
        batch_size: rows per batch at most.
        max_batch_tokens: cap on rows x padded length per batch (default 4096 on CPU, 16384 on GPU).
        max_length: token budget per pair (default: the manifest's; v1 512, v2 8192).
        allow_fallback: warn instead of raising when a requested GPU provider does not attach.
        cache_dir: artifacts exported on first use and TensorRT engines live here.
        session_options: onnxruntime.SessionOptions to use as is.
        intra_op_num_threads: CPU threads for onnxruntime (ignored with ``session_options``).
        verify: check the artifact's sha256 checksums at load.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        providers: str | Sequence[prov.ProviderSpec] = "auto",
        dtype: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        max_batch_tokens: int | None = None,
        allow_fallback: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        session_options: ort.SessionOptions | None = None,
        intra_op_num_threads: int | None = None,
        verify: bool = True,
    ) -> None:
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES} or None, got {dtype!r}")
        # Checked before the model is resolved: a hub id may be exported first, which takes minutes.
        _check_positive_int("batch_size", batch_size, allow_none=False)
        _check_positive_int("max_length", max_length)
        _check_positive_int("max_batch_tokens", max_batch_tokens)
        _check_positive_int("intra_op_num_threads", intra_op_num_threads)
        available = ort.get_available_providers()
        wants_gpu = providers == "auto" and any(p in available for p in prov.GPU_PROVIDERS)
        if not isinstance(providers, str):
            wants_gpu = any(prov.provider_name(p) in prov.GPU_PROVIDERS for p in providers)
        path = resolve_artifact(model, dtype=dtype or ("fp16" if wants_gpu else "fp32"), cache_dir=cache_dir)
        manifest = read_manifest(path)
        if dtype is not None and manifest.dtype != dtype:
            raise ValueError(f"dtype: asked for {dtype!r} but the artifact at {str(path)!r} is {manifest.dtype!r}")
        if not manifest.valid:
            why = manifest.validation.summary() if manifest.validation is not None else "no validation recorded"
            warnings.warn(f"artifact {path} was not validated against the reference at export: {why}",
                          UserWarning, stacklevel=2)
        self._load(path, manifest, providers=providers, batch_size=batch_size, max_length=max_length,
                   max_batch_tokens=max_batch_tokens, allow_fallback=allow_fallback, cache_dir=cache_dir,
                   session_options=session_options, intra_op_num_threads=intra_op_num_threads, verify=verify)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike[str], manifest: Manifest, **options: Any) -> MxbaiReranker:
        """Load an artifact directory with a manifest held in memory rather than read from disk.

        Export-time validation uses this: it scores the staged artifact through exactly the path
        users run (encoding, token-budget batching, scatter back to order, activation) before the
        manifest, which will carry the verdict, is written. ``options`` are the constructor's
        keyword arguments except ``model`` and ``dtype``.
        """
        self = cls.__new__(cls)
        self._load(Path(path), manifest, **options)
        return self

    def _load(
        self,
        path: Path,
        manifest: Manifest,
        *,
        providers: str | Sequence[prov.ProviderSpec] = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        max_batch_tokens: int | None = None,
        allow_fallback: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        session_options: ort.SessionOptions | None = None,
        intra_op_num_threads: int | None = None,
        verify: bool = True,
    ) -> None:
        _check_positive_int("batch_size", batch_size, allow_none=False)
        _check_positive_int("max_length", max_length)
        _check_positive_int("max_batch_tokens", max_batch_tokens)
        _check_positive_int("intra_op_num_threads", intra_op_num_threads)
        self.path: Path = path
        self.manifest: Manifest = manifest
        verify_files(self.path, self.manifest, checksums=verify)
        self.family = self.manifest.family
        self.model_id = str(self.manifest.source.get("model_id") or self.path.name)
        self.batch_size = batch_size
        self.max_length = max_length or self.manifest.max_length
        if self.family == "v1":
            # Like v2's clamp to its positions: past them the scores are not the reference's, which
            # truncates to the model's limit.
            positions = int(self.manifest.source.get("max_position_embeddings") or V1_MAX_POSITIONS)
            if self.max_length > positions:
                warnings.warn(f"max_length: {self.max_length} is more than the {positions} positions of this v1 "
                              f"model; using {positions}", UserWarning, stacklevel=3)
                self.max_length = positions

        tokenizer = Tokenizer.from_file(str(self.path / TOKENIZER_NAME))
        if self.family == "v1":
            self._v1 = V1PairEncoder(tokenizer, self.max_length)
        else:
            assert self.manifest.prompt is not None
            self._v2 = V2PromptEncoder(tokenizer, self.manifest.prompt, self.max_length)
            self.max_length = self._v2.max_length

        available = ort.get_available_providers()
        requested = prov.resolve_providers(providers, available, artifact_dtype=self.manifest.dtype)
        requested = prov.with_default_options(
            requested, cache_dir=cache_root(cache_dir), artifact_key=self.manifest.files[MODEL_NAME].sha256[:16],
            batch_size=batch_size, max_length=self._graph_max_length(), artifact_dtype=self.manifest.dtype)
        if session_options is None:
            session_options = ort.SessionOptions()
            session_options.log_severity_level = 3
            if intra_op_num_threads:
                session_options.intra_op_num_threads = intra_op_num_threads
        try:
            self._session = ort.InferenceSession(str(self.path / MODEL_NAME), session_options, providers=requested)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt graphs
            raise RuntimeError(f"model: onnxruntime could not load {self.path / MODEL_NAME}: {exc}") from exc
        self.providers: list[str] = self._session.get_providers()
        prov.check_attached(requested, self.providers, allow_fallback=allow_fallback,
                            auto=isinstance(providers, str))
        self._ids_name, self._mask_name, self._score_name = self._graph_names()
        # TensorRT builds its engine for the profile's shapes: no batch may have more rows.
        self._max_rows = prov.trt_max_batch(requested) if prov.TRT in self.providers else None
        self._io_binding = self.providers[0] == prov.CUDA
        on_gpu = self.providers[0] in prov.GPU_PROVIDERS
        self.max_batch_tokens = max_batch_tokens or (
            DEFAULT_MAX_BATCH_TOKENS_GPU if on_gpu else DEFAULT_MAX_BATCH_TOKENS_CPU)
        if self.manifest.dtype == "fp16" and self.providers[0] == prov.CPU:
            warnings.warn("fp16 artifacts are built for CUDA/TensorRT; on the CPU use the fp32 or int8 artifact",
                          UserWarning, stacklevel=3)
        logger.info("loaded %s (%s %s) on %s", self.path, self.family, self.manifest.dtype, self.providers)

    def _graph_names(self) -> tuple[str, str, str]:
        """(token ids, attention mask, score) names: the manifest's, checked against the graph's own."""
        ids_name, mask_name = self.manifest.inputs
        score_name = self.manifest.outputs[0]
        graph_inputs = sorted(i.name for i in self._session.get_inputs())
        graph_outputs = [o.name for o in self._session.get_outputs()]
        if graph_inputs != sorted(self.manifest.inputs) or score_name not in graph_outputs:
            raise ArtifactError(
                f"model: the graph in {str(self.path)!r} has inputs {graph_inputs} and outputs {graph_outputs}, "
                f"but its manifest lists inputs {self.manifest.inputs} and outputs {self.manifest.outputs}"
            )
        return ids_name, mask_name, score_name

    def _graph_max_length(self) -> int:
        if self.family == "v2":
            assert self.manifest.prompt is not None
            return self._v2.max_length + self.manifest.prompt.predefined_length
        return self.max_length

    @property
    def session(self) -> ort.InferenceSession:
        """The onnxruntime session (for profiling or inspection; shared, do not reconfigure)."""
        return self._session

    def __deepcopy__(self, memo: dict[int, Any]) -> MxbaiReranker:
        """Copies share this instance: it is immutable after loading and its session is thread-safe."""
        return self

    def __repr__(self) -> str:
        return (f"MxbaiReranker(model={str(self.path)!r}, family={self.family!r}, dtype={self.manifest.dtype!r}, "
                f"providers={self.providers!r})")

    # -- encoding and running -------------------------------------------------------------------
    def _encode(self, query: str, documents: list[str], instruction: str | None) -> list[list[int]]:
        if self.family == "v1":
            return self._v1.encode(query, documents)
        return self._v2.encode(query, documents, instruction=instruction)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._io_binding:
            binding = self._session.io_binding()
            binding.bind_cpu_input(self._ids_name, ids)
            binding.bind_cpu_input(self._mask_name, mask)
            binding.bind_output(self._score_name, "cuda")
            self._session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        return self._session.run([self._score_name], {self._ids_name: ids, self._mask_name: mask})[0]

    def _raw_scores(self, rows: list[list[int]], batch_size: int, show_progress: bool) -> np.ndarray:
        if self._max_rows is not None:
            batch_size = min(batch_size, self._max_rows)
        out = np.empty(len(rows), dtype=np.float64)
        batches = plan_batches([len(r) for r in rows], batch_size=batch_size, max_batch_tokens=self.max_batch_tokens)
        bar = show_progress and len(batches) >= _PROGRESS_MIN_BATCHES
        for batch in tqdm(batches, desc="Ranking", unit="batch", disable=not bar):
            ids, mask = pad_batch([rows[i] for i in batch], self.manifest.pad_token_id,
                                  side=self.manifest.padding_side)
            out[batch] = np.asarray(self._run(ids, mask), dtype=np.float64).reshape(len(batch))
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            raise NonFiniteScoreError(bad.tolist(), dtype=self.manifest.dtype, provider=self.providers[0])
        return out

    def _activate(self, raw: np.ndarray, normalize: bool) -> np.ndarray:
        # exp overflows to inf for logits below about -709; 1 / (1 + inf) is the right limit, 0.
        with np.errstate(over="ignore"):
            if self.manifest.score.activation == "sigmoid":
                return 1.0 / (1.0 + np.exp(-raw))
            if normalize:
                shift = self.manifest.score.normalize_shift or 0.0
                return 1.0 / (1.0 + np.exp(-(raw - shift)))
        return raw

    # -- pre-encoded rows (for servers that batch pairs from many queries together) -------------
    def encode(self, query: str, documents: Sequence[str], *, instruction: str | None = None) -> list[list[int]]:
        """Token ids of each (query, document) pair, checked as ``score`` checks its arguments.

        With ``raw_scores`` and ``activate`` this is ``score`` in three steps, so a server can encode
        each request on its own and run the rows of many requests through the model together.
        """
        query = check_query(query)
        docs = check_documents(documents)
        if instruction is not None:
            if not isinstance(instruction, str):
                raise TypeError(f"instruction must be a str or None, got {type(instruction).__name__}")
            if self.family == "v1":
                raise ValueError("instruction is only supported by v2 rerankers; this is a v1 (DeBERTa) model")
        return self._encode(query, docs, instruction) if docs else []

    def raw_scores(self, rows: Sequence[Sequence[int]], *, batch_size: int | None = None) -> list[float]:
        """The score head's output for encoded rows (any mix of queries), batched by token budget."""
        _check_positive_int("batch_size", batch_size)
        if not rows:
            return []
        return [float(x) for x in self._raw_scores([list(r) for r in rows], batch_size or self.batch_size, False)]

    def activate(self, raw: Sequence[float], *, normalize: bool = False) -> list[float]:
        """Turn ``raw_scores`` into what ``score`` returns (v1 sigmoid; v2 raw, or sigmoid(x - shift))."""
        return [float(x) for x in self._activate(np.asarray(raw, dtype=np.float64), normalize)]

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
    ) -> list[float]:
        """Scores in the caller's order: v1 sigmoid probabilities, v2 raw logits (sigmoid(x - shift) if normalize)."""
        query = check_query(query)
        docs = check_documents(documents)
        _check_positive_int("batch_size", batch_size)
        if instruction is not None:
            if not isinstance(instruction, str):
                raise TypeError(f"instruction must be a str or None, got {type(instruction).__name__}")
            if self.family == "v1":
                raise ValueError("instruction is only supported by v2 rerankers; this is a v1 (DeBERTa) model")
        if not docs:
            return []
        rows = self._encode(query, docs, instruction)
        raw = self._raw_scores(rows, batch_size or self.batch_size, show_progress)
        return [float(x) for x in self._activate(raw, normalize)]

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
    ) -> list[RankResult]:
        """Documents sorted by descending score, ties by index (as mxbai_rerank), at most ``top_k``."""
        _check_positive_int("top_k", top_k)
        scores = np.asarray(self.score(query, documents, instruction=instruction, normalize=normalize,
                                       batch_size=batch_size, show_progress=show_progress), dtype=np.float64)
        if scores.size == 0:
            return []
        order = np.lexsort((np.arange(scores.size), -scores))[: top_k or scores.size]
        docs = list(documents)
        return [RankResult(index=int(i), score=float(scores[i]), document=docs[i] if return_documents else None)
                for i in order]
