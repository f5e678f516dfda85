"""LlamaIndex adapter: ``MxbaiRerank``, a node postprocessor that reranks with ``MxbaiReranker``.

    from mxbai_integrations.llama_index import MxbaiRerank

    query_engine = index.as_query_engine(node_postprocessors=[MxbaiRerank(top_n=5)])

Needs the ``llama-index`` extra (llama-index-core).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from mxbai_integrations.errors import MissingExtraError

try:
    from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, field_serializer, model_validator
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingExtraError(
        'mxbai_integrations.llama_index needs llama-index-core: pip install "mxbai-integrations[llama-index]"'
    ) from exc

from mxbai_integrations.adapters import SharedReranker, check_reranker_kwargs, model_to_str, select
from mxbai_integrations.checks import check_query
from mxbai_integrations.reranker import MxbaiReranker
from mxbai_integrations.resolve import default_model

__all__ = ["MxbaiRerank"]

RETRIEVAL_SCORE_KEY = "retrieval_score"

dispatcher = get_dispatcher(__name__)


def _check_nodes(nodes: Any) -> list[NodeWithScore]:
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, (list, tuple)):
        raise TypeError(f"nodes must be a list of NodeWithScore, got {type(nodes).__name__}")
    for i, node in enumerate(nodes):
        if not isinstance(node, NodeWithScore):
            raise TypeError(f"nodes[{i}] must be a NodeWithScore, got {type(node).__name__}")
    return list(nodes)


class MxbaiRerank(BaseNodePostprocessor):
    """Rerank retrieved nodes with an mxbai reranker on ONNX Runtime and keep the best ``top_n``.

    Returns new ``NodeWithScore`` objects, best first, whose ``score`` is the reranker's (a float);
    the caller's ``NodeWithScore`` objects and nodes are never modified, unlike rerankers that
    overwrite scores in place. With ``keep_retrieval_score`` the node is copied and the copy's
    metadata gets ``retrieval_score``, excluded from the LLM and embedding text so it does not leak
    into prompts.

    Emits ``ReRankStartEvent``/``ReRankEndEvent`` (instrumentation) and a ``RERANKING`` callback
    event on every call, empty input included, so traces show every rerank step. Their model name
    is the artifact's source model id (``MxbaiReranker.model_id``); on a call that does not load the
    model (empty input, no query) it is the configured ``model`` string.

    The reranker is loaded on first use (a PrivateAttr), then shared by calls, threads and
    ``copy.deepcopy`` copies. ``to_dict``/``to_json``/``model_dump``/pickle write ``model`` as a
    string: an artifact path or hub id as given, and a ``MxbaiReranker`` instance as its artifact
    directory (``reranker.path``); reloading opens the same artifact with the options in
    ``reranker_kwargs``, which are serialised too. ``from_dict``/``from_json`` restore it.

    Args:
        model: artifact directory, hub id, or a ready ``MxbaiReranker`` (used as is). None reads
            ``MXBAI_RERANK_MODEL``, else the default mxbai-rerank model.
        top_n: keep at most this many nodes.
        score_threshold: drop nodes scoring below this, before ``top_n`` is applied. The scale is
            the model's: v1 probabilities, v2 raw logits unless ``normalize``.
        instruction: v2 only: an instruction prepended to the query (a v1 model raises ValueError).
        normalize: v2 only: sigmoid-normalise scores into (0, 1); v1 scores are always probabilities.
        batch_size: rows per ONNX Runtime batch (None: the reranker's default).
        metadata_mode: which metadata is scored along with the node text (as for embeddings).
        keep_retrieval_score: keep the retriever's score in the copied node's metadata.
        reranker_kwargs: ``MxbaiReranker`` options (``providers``, ``dtype``, ``max_length``,
            ``max_batch_tokens``, ``allow_fallback``, ...) used when ``model`` is loaded; serialised
            with the postprocessor. Not allowed with a ready ``MxbaiReranker`` as ``model``.

    Examples:
        >>> rerank = MxbaiRerank(model="mxbai-rerank-base-v2-onnx", top_n=2,
        ...                      reranker_kwargs={"providers": ["CPUExecutionProvider"], "max_length": 1024})
        >>> [n.score for n in rerank.postprocess_nodes(nodes, query_str="query")]  # doctest: +SKIP
        [3.91, 1.27]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: str | os.PathLike[str] | MxbaiReranker | None = Field(
        default=None, description="Artifact directory, hub id or MxbaiReranker; None: MXBAI_RERANK_MODEL."
    )
    top_n: int = Field(default=5, gt=0, strict=True, description="Number of nodes to return, best first.")
    score_threshold: float | None = Field(
        default=None, strict=True, allow_inf_nan=False, description="Minimum score kept, applied before top_n."
    )
    instruction: str | None = Field(default=None, strict=True, description="v2 only: instruction for the query.")
    normalize: bool = Field(default=False, description="v2 only: sigmoid-normalise the scores.")
    batch_size: int | None = Field(default=None, gt=0, strict=True, description="Rows per ONNX Runtime batch.")
    metadata_mode: MetadataMode = Field(default=MetadataMode.EMBED, description="Metadata scored with the text.")
    keep_retrieval_score: bool = Field(default=False, description="Keep the retriever's score in metadata.")
    reranker_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="MxbaiReranker options (providers, dtype, max_length, ...)."
    )

    _shared: SharedReranker = PrivateAttr(default_factory=SharedReranker)

    @model_validator(mode="after")
    def _check_reranker_kwargs(self) -> MxbaiRerank:
        check_reranker_kwargs(self.reranker_kwargs, self.model)
        return self

    @classmethod
    def class_name(cls) -> str:
        return "MxbaiRerank"

    @field_serializer("model")
    def _serialize_model(self, model: str | os.PathLike[str] | MxbaiReranker | None) -> str | None:
        return model_to_str(model)

    @property
    def reranker(self) -> MxbaiReranker:
        """The shared ``MxbaiReranker``, created on first access (thread-safe: one session per postprocessor)."""
        return self._shared.get(self.model, self.reranker_kwargs)

    def _model_name(self) -> str:
        if isinstance(self.model, MxbaiReranker):
            return self.model.model_id
        loaded = self._shared.loaded(self.model, self.reranker_kwargs)
        if loaded is not None:
            return loaded.model_id
        return default_model() if self.model is None else os.fspath(self.model)

    def _rerank(self, reranker: MxbaiReranker, nodes: list[NodeWithScore], query: str) -> list[NodeWithScore]:
        results = reranker.rank(
            query,
            [n.node.get_content(metadata_mode=self.metadata_mode) for n in nodes],
            return_documents=False,
            instruction=self.instruction,
            normalize=self.normalize,
            batch_size=self.batch_size,
        )
        out = []
        for r in select(results, score_threshold=self.score_threshold, top_n=self.top_n):
            src = nodes[r.index]
            node = src.node
            if self.keep_retrieval_score:
                node = node.model_copy(
                    update={
                        "metadata": {**node.metadata, RETRIEVAL_SCORE_KEY: src.score},
                        "excluded_llm_metadata_keys": _with_key(node.excluded_llm_metadata_keys),
                        "excluded_embed_metadata_keys": _with_key(node.excluded_embed_metadata_keys),
                    }
                )
            out.append(NodeWithScore(node=node, score=float(r.score)))
        return out

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Rerank ``nodes`` against ``query_bundle.query_str``; returns new nodes, best first."""
        nodes = _check_nodes(nodes)
        query = None if query_bundle is None else check_query(query_bundle.query_str)
        # Load before the start event, so that the events of a call all name the model by its id.
        reranker = self.reranker if nodes and query is not None else None
        model_name = self._model_name()
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=model_name))
        if query_bundle is None or query is None:
            raise ValueError("query_bundle is required: MxbaiRerank scores each node against the query")
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: model_name,
                EventPayload.QUERY_STR: query,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            new_nodes = [] if reranker is None else self._rerank(reranker, nodes, query)
            event.on_end(payload={EventPayload.NODES: new_nodes})
        dispatcher.event(ReRankEndEvent(nodes=new_nodes))
        return new_nodes

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        """Run the whole step (model loading included) in a worker thread so the event loop keeps running."""
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the configuration only (``model`` as a string); the copy loads its reranker on first use."""
        return (type(self).from_dict, (self.to_dict(),))


def _with_key(keys: list[str]) -> list[str]:
    return keys if RETRIEVAL_SCORE_KEY in keys else [*keys, RETRIEVAL_SCORE_KEY]
