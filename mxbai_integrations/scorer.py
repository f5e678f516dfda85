"""The scorer: an artifact, its onnxruntime session and its encoder, from text pairs to scores.

Three steps, the shape of infinity's cross-encoder backend (``encode_pre`` / ``encode_core`` /
``encode_post``), so that whoever batches can stand between them:

- ``encode`` (tokenize): token ids per (query, document) pair, as the reference builds them;
- ``raw_scores`` (run): the graph's score head over any rows, batched by token budget;
- ``activate`` (finish): v1 sigmoid, v2 raw logit or sigmoid(x - shift).

``score`` chains the three for one query, tokenizing and running chunk by chunk so memory follows
the batch plan, not the request. ``MxbaiReranker`` (ranking), export-time validation and the
server's cross-request batcher all use this one class.

Examples:
    >>> from mxbai_integrations.artifact import read_manifest
    >>> scorer = Scorer("artifact", read_manifest("artifact"))  # doctest: +SKIP
    >>> rows = scorer.encode("capital of France?", ["Paris is the capital.", "Berlin."])  # doctest: +SKIP
    >>> scorer.activate(scorer.raw_scores(rows)).round(3).tolist()  # doctest: +SKIP
    [0.931, 0.127]
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
from tqdm import tqdm

from mxbai_integrations import providers as prov
from mxbai_integrations.artifact import TOKENIZER_NAME, Manifest, check_graph, verify_files
from mxbai_integrations.batching import pad_batch, plan_batches
from mxbai_integrations.checks import (
    check_documents,
    check_instruction,
    check_long_documents,
    check_non_negative_int,
    check_positive_int,
    check_query,
)
from mxbai_integrations.errors import ArgumentError, ArtifactError, NonFiniteScoreError
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.prompt import Encoder, Query, V1PairEncoder, V2PromptEncoder
from mxbai_integrations.session import LoadedSession, load_session

logger = logging.getLogger(__name__)

# Rows x padded length per batch. On the CPU a small budget is as fast and halves peak memory
# (base-v2 width, 100 documents: 1.7 GB at 4096 against 3.4 GB at 16384); GPUs want larger batches.
DEFAULT_MAX_BATCH_TOKENS_CPU = 4096
DEFAULT_MAX_BATCH_TOKENS_GPU = 16384
# Every released v1 model (DeBERTa-v3 xsmall/base/large) has 512 positions; used when the manifest
# does not record the checkpoint's max_position_embeddings.
V1_MAX_POSITIONS = 512
# ``score`` tokenizes and runs this much at a time: tokenizer encodings cost ~20 KB per short
# document, so 100,000 documents held at once took 2.2 GB.
ENCODE_CHUNK_DOCUMENTS = 1024
ENCODE_CHUNK_CHARS = 2_000_000
_PROGRESS_MIN_DOCUMENTS = 64


@dataclass(frozen=True)
class EncodedDocuments:
    """The rows for a list of documents: one each, or several (chunks) for long v1 documents.

    Attributes:
        rows: token ids per row.
        owners: the document each row belongs to (rows of one document are consecutive).
        spans: with chunks, the (start, end) characters of each row's document text; else None.
    """

    rows: list[list[int]]
    owners: list[int]
    spans: list[tuple[int, int]] | None = None

    @property
    def documents(self) -> int:
        return self.owners[-1] + 1 if self.owners else 0

    def best(self, raw: np.ndarray, documents: int) -> tuple[np.ndarray, list[int]]:
        """Each document's best raw score (NaN if any of its rows is) and the row that gave it."""
        if self.spans is None:
            return raw, list(range(documents))
        best = np.full(documents, -np.inf)
        winner = [-1] * documents
        for row, owner in enumerate(self.owners):
            value = raw[row]
            if np.isnan(best[owner]):
                continue
            if np.isnan(value) or value > best[owner]:
                best[owner], winner[owner] = value, row
        return best, winner


@dataclass(frozen=True)
class Scored:
    """Scores in the documents' order and, with chunks, the span of text that decided each."""

    scores: np.ndarray
    spans: list[tuple[int, int]] | None = None


def load_tokenizer(path: Path) -> Tokenizer:
    """The artifact's tokenizer.json, or an ArtifactError naming the file."""
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise ArtifactError(f"model: {TOKENIZER_NAME} in {str(path.parent)!r} is not a valid tokenizer file: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


class Scorer:
    """One artifact loaded for scoring: manifest, session, encoder. Immutable and thread-safe after loading.

    Args:
        path: the artifact directory.
        manifest: its manifest, already read (export-time validation passes one not yet written).
        options: how to load and run it (providers, batch size, budgets, checksum check).
        session_options: onnxruntime session options used as is.

    Raises:
        ArtifactError: a file is missing or corrupt, or the manifest does not describe the graph.
        ProviderError: a requested provider is not offered or did not attach (unless fallback).
        ArgumentError: an option does not fit this model (e.g. a v1 max_length below the template).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        manifest: Manifest,
        options: RerankerOptions | None = None,
        *,
        session_options: ort.SessionOptions | None = None,
        allowed_root: str | os.PathLike[str] | None = None,
    ) -> None:
        options = options or RerankerOptions()
        self.path = Path(path)
        self.manifest = manifest
        self.options = options
        verify_files(self.path, manifest, checksums=options.verify, allowed_root=allowed_root)
        self.family = manifest.family
        self.model_id = manifest.source.model_id or self.path.name
        self.batch_size = options.batch_size
        self.encoder: Encoder = self._make_encoder(options.max_length or manifest.max_length)
        self.max_length: int = self.encoder.max_length
        check_graph(self.path, manifest)
        self._loaded: LoadedSession = load_session(self.path, manifest, options, session_options=session_options,
                                                   graph_max_length=self._graph_max_length())
        self.providers: list[str] = self._loaded.providers
        self._ids_name, self._mask_name, self._score_name = self._graph_names()
        self.max_batch_tokens: int = options.max_batch_tokens or (
            DEFAULT_MAX_BATCH_TOKENS_GPU if self._loaded.on_gpu else DEFAULT_MAX_BATCH_TOKENS_CPU)
        if manifest.dtype == "fp16" and self.providers[0] == prov.CPU:
            warnings.warn("fp16 artifacts are built for CUDA/TensorRT; on the CPU use the fp32 or int8 artifact",
                          UserWarning, stacklevel=3)
        logger.info("loaded %s (%s %s) on %s", self.path, self.family, manifest.dtype, self.providers)

    # -- loading ------------------------------------------------------------------------------------
    def _make_encoder(self, max_length: int) -> Encoder:
        tokenizer = load_tokenizer(self.path / TOKENIZER_NAME)
        vocab = tokenizer.get_vocab_size(with_added_tokens=True)
        if self.manifest.pad_token_id >= vocab:
            raise ArtifactError(f"manifest pad_token_id {self.manifest.pad_token_id} is not a token of "
                                f"{TOKENIZER_NAME} (vocabulary of {vocab})")
        if self.family == "v2":
            assert self.manifest.prompt is not None
            return V2PromptEncoder(tokenizer, self.manifest.prompt, max_length)
        # Past the model's positions the scores are not the reference's, which truncates to the model's limit.
        positions = self.manifest.source.max_position_embeddings or V1_MAX_POSITIONS
        if max_length > positions:
            warnings.warn(f"max_length: {max_length} is more than the {positions} positions of this v1 "
                          f"model; using {positions}", UserWarning, stacklevel=4)
            max_length = positions
        return V1PairEncoder(tokenizer, max_length)

    def _graph_max_length(self) -> int:
        if self.manifest.prompt is not None:
            return self.max_length + self.manifest.prompt.predefined_length
        return self.max_length

    def _graph_names(self) -> tuple[str, str, str]:
        """(token ids, attention mask, score) names: the manifest's, checked against the graph's own."""
        ids_name, mask_name = self.manifest.inputs
        score_name = self.manifest.outputs[0]
        session = self._loaded.session
        graph_inputs = sorted(i.name for i in session.get_inputs())
        graph_outputs = [o.name for o in session.get_outputs()]
        if graph_inputs != sorted(self.manifest.inputs) or score_name not in graph_outputs:
            raise ArtifactError(
                f"model: the graph in {str(self.path)!r} has inputs {graph_inputs} and outputs {graph_outputs}, "
                f"but its manifest lists inputs {self.manifest.inputs} and outputs {self.manifest.outputs}"
            )
        return ids_name, mask_name, score_name

    @property
    def session(self) -> ort.InferenceSession:
        """The onnxruntime session (for profiling or inspection; shared, do not reconfigure)."""
        return self._loaded.session

    @property
    def uses_io_binding(self) -> bool:
        """True when batches run through onnxruntime IO binding (CUDA: the score output stays on the device)."""
        return self._loaded.io_binding

    # -- step 1: tokenize ---------------------------------------------------------------------------
    def query(self, query: str, *, instruction: str | None = None) -> Query:
        """The query tokenized once, for ``pairs`` (arguments checked)."""
        query = check_query(query)
        return self.encoder.query(query, check_instruction(instruction, self.family))

    def pairs(self, query: Query, documents: Sequence[str]) -> list[list[int]]:
        """Token ids of each (query, document) row (documents not checked: ``encode`` checks them)."""
        return self.encoder.pairs(query, documents) if documents else []

    def encode(self, query: str, documents: Sequence[str], *, instruction: str | None = None) -> list[list[int]]:
        """Token ids of each (query, document) pair, with the arguments checked as ``score`` checks them."""
        prepared = self.query(query, instruction=instruction)
        return self.pairs(prepared, check_documents(documents))

    def encode_documents(
        self,
        query: Query,
        documents: Sequence[str],
        *,
        long_documents: str | None = None,
        chunk_stride: int | None = None,
        max_chunks: int | None = None,
    ) -> EncodedDocuments:
        """Rows for each document: one, or with ``long_documents="max_chunk"`` (v1) one per chunk.

        The defaults come from the options; see ``RerankerOptions.long_documents``.
        """
        mode = check_long_documents(self.options.long_documents if long_documents is None else long_documents)
        if mode == "truncate":
            return EncodedDocuments(self.pairs(query, documents), list(range(len(documents))))
        if not isinstance(self.encoder, V1PairEncoder):
            raise ArgumentError("long_documents: 'max_chunk' is for v1 models, whose pairs hold 512 tokens; "
                                "v2 models read documents up to max_length (8192 by default, 32768 positions)")
        stride = check_non_negative_int("chunk_stride", self.options.chunk_stride if chunk_stride is None
                                        else chunk_stride)
        limit = check_positive_int("max_chunks", self.options.max_chunks if max_chunks is None else max_chunks)
        rows, owners, spans = [], [], []
        for i, doc in enumerate(documents):
            for chunk in self.encoder.chunks(query, doc, stride=stride, max_chunks=limit):
                rows.append(chunk.ids)
                owners.append(i)
                spans.append((chunk.start, chunk.end))
        return EncodedDocuments(rows, owners, spans)

    # -- step 2: run --------------------------------------------------------------------------------
    def run_batch(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The graph's score output for one padded batch (float32, one value per row)."""
        session = self._loaded.session
        if self._loaded.io_binding:
            binding = session.io_binding()
            binding.bind_cpu_input(self._ids_name, ids)
            binding.bind_cpu_input(self._mask_name, mask)
            binding.bind_output(self._score_name, "cuda")
            session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        return session.run([self._score_name], {self._ids_name: ids, self._mask_name: mask})[0]

    def raw_scores(
        self,
        rows: Sequence[Sequence[int]],
        *,
        batch_size: int | None = None,
        check_finite: bool = True,
        progress: tqdm | None = None,
    ) -> np.ndarray:
        """The score head's output for encoded rows (any mix of queries), batched by token budget.

        Args:
            rows: token ids per row, from ``encode``/``pairs``.
            batch_size: rows per batch at most (default: the options').
            check_finite: raise NonFiniteScoreError for NaN/inf (the server checks per request instead).
            progress: a bar advanced by the rows of each finished batch.

        Returns:
            float64 scores in the rows' order.
        """
        check_positive_int("batch_size", batch_size)
        out = np.empty(len(rows), dtype=np.float64)
        if not rows:
            return out
        limit = batch_size or self.batch_size
        if self._loaded.max_rows is not None:  # TensorRT built its engine for this many rows at most
            limit = min(limit, self._loaded.max_rows)
        plan = plan_batches([len(r) for r in rows], batch_size=limit, max_batch_tokens=self.max_batch_tokens)
        for batch in plan:
            ids, mask = pad_batch([rows[i] for i in batch], self.manifest.pad_token_id,
                                  side=self.manifest.padding_side)
            out[batch] = np.asarray(self.run_batch(ids, mask), dtype=np.float64).reshape(len(batch))
            if progress is not None:
                progress.update(len(batch))
        if check_finite:
            self.check_finite(out)
        return out

    def check_finite(self, raw: np.ndarray, offset: int = 0) -> None:
        """Raise NonFiniteScoreError naming the rows (plus ``offset``) whose score is NaN or inf."""
        bad = np.flatnonzero(~np.isfinite(raw))
        if bad.size:
            raise NonFiniteScoreError((bad + offset).tolist(), dtype=self.manifest.dtype, provider=self.providers[0])

    # -- step 3: finish -----------------------------------------------------------------------------
    def activate(self, raw: np.ndarray | Sequence[float], *, normalize: bool = False) -> np.ndarray:
        """What ``score`` returns for raw head outputs: v1 sigmoid; v2 raw, or sigmoid(x - shift)."""
        values = np.asarray(raw, dtype=np.float64)
        # exp overflows to inf for logits below about -709; 1 / (1 + inf) is the right limit, 0.
        with np.errstate(over="ignore"):
            if self.manifest.score.activation == "sigmoid":
                return 1.0 / (1.0 + np.exp(-values))
            if normalize:
                shift = self.manifest.score.normalize_shift or 0.0
                return 1.0 / (1.0 + np.exp(-(values - shift)))
        return values

    # -- all three ----------------------------------------------------------------------------------
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
        max_chunks: int | None = None,
    ) -> Scored:
        """Scores in the documents' order; tokenized and run chunk by chunk, one progress bar over all."""
        check_positive_int("batch_size", batch_size)
        prepared = self.query(query, instruction=instruction)
        docs = check_documents(documents)
        raw = np.empty(len(docs), dtype=np.float64)
        spans: list[tuple[int, int]] | None = None
        bar = tqdm(total=len(docs), desc="Ranking", unit="doc",
                   disable=not show_progress or len(docs) < _PROGRESS_MIN_DOCUMENTS)
        with bar:
            for start, stop in self._chunks(docs):
                encoded = self.encode_documents(prepared, docs[start:stop], long_documents=long_documents,
                                                chunk_stride=chunk_stride, max_chunks=max_chunks)
                chunked = encoded.spans is not None
                rows_raw = self.raw_scores(encoded.rows, batch_size=batch_size, check_finite=False,
                                           progress=None if chunked else bar)
                raw[start:stop], winners = encoded.best(rows_raw, stop - start)
                if encoded.spans is not None:
                    spans = (spans or []) + [encoded.spans[row] for row in winners]
                    bar.update(stop - start)
        self.check_finite(raw)
        return Scored(self.activate(raw, normalize=normalize), spans)

    def _chunks(self, docs: Sequence[str]) -> Iterator[tuple[int, int]]:
        """Consecutive [start, stop) ranges of at most ENCODE_CHUNK_DOCUMENTS / ENCODE_CHUNK_CHARS."""
        cap = self.max_length * 16 + 1024  # what cap_texts keeps of a long text
        start, chars = 0, 0
        for i, doc in enumerate(docs):
            size = min(len(doc), cap)
            if i > start and (i - start >= ENCODE_CHUNK_DOCUMENTS or chars + size > ENCODE_CHUNK_CHARS):
                yield start, i
                start, chars = i, 0
            chars += size
        if start < len(docs):
            yield start, len(docs)

