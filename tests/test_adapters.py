"""mxbai_integrations.adapters: what the LangChain compressor and the LlamaIndex postprocessor share.

``SharedReranker`` holds one slot per (source, options), so every thread and (deep) copy of an
adapter shares one ONNX session while a copy given another model gets a reranker of its own, and
``reranker_kwargs`` carries the reranker's options through pickling and JSON. Both adapters are
driven concurrently and after serialisation, and their scores are compared with the reference
libraries (CrossEncoder, mxbai_rerank), never with the code under test.
"""

from __future__ import annotations

import copy
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_edits import CPU, DOCS, QUERY

from mxbai_integrations import MxbaiReranker


def v1_reference_scores(v1_reference: Any, query: str, docs: list[str]) -> np.ndarray:
    return np.asarray(v1_reference.predict([(query, d) for d in docs], batch_size=1, show_progress_bar=False))


def v2_reference_scores(v2_reference: Any, query: str, docs: list[str]) -> np.ndarray:
    return np.concatenate([v2_reference.predict([query], [d]).double().numpy() for d in docs])


# -- SharedReranker: one slot per model, copies given another model get their own -----------------------------------


def test_adapter_copies_with_another_model_keep_their_own_reranker_across_threads(
    v1_artifact: Path, v2_artifact: Path, v1_reference: Any, v2_reference: Any
) -> None:
    from langchain_core.documents import Document

    from mxbai_integrations.langchain import MxbaiCompressor

    docs = [Document(page_content=t, id=str(i)) for i, t in enumerate(DOCS)]
    want = {"v1": v1_reference_scores(v1_reference, QUERY, DOCS), "v2": v2_reference_scores(v2_reference, QUERY, DOCS)}
    a = MxbaiCompressor(model=v1_artifact, top_n=None)
    b = a.model_copy(update={"model": v2_artifact}, deep=True)
    c = copy.deepcopy(a)
    c.model = str(v2_artifact)
    assert b._shared is a._shared and c._shared is a._shared  # the copies do share the helper
    ra = a.reranker
    assert b.reranker.path == v2_artifact and a.reranker is ra, "loading B must not evict A's reranker"
    assert c.reranker is b.reranker  # an equal source (str vs Path) keeps the session

    fresh = MxbaiCompressor(model=v1_artifact, top_n=None)
    fresh_b = fresh.model_copy(update={"model": v2_artifact}, deep=True)
    # The last two load from the threads, concurrently with the others' calls.
    adapters = [("v1", a), ("v2", b), ("v2", c), ("v1", fresh), ("v2", fresh_b)]
    barrier = threading.Barrier(8)

    def racing(i: int) -> tuple[str, dict[str, float]]:
        if i < 8:  # the first calls start together
            barrier.wait(timeout=60)
        family, adapter = adapters[i % len(adapters)]
        out = adapter.compress_documents(docs, QUERY)
        return family, {d.id: d.metadata["relevance_score"] for d in out}

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(racing, range(48)))
    for family, scores in results:
        got = np.array([scores[str(i)] for i in range(len(DOCS))])
        np.testing.assert_allclose(got, want[family], atol=1e-3, rtol=0)
    assert fresh.reranker.path == v1_artifact and fresh_b.reranker.path == v2_artifact


# -- adapters set the reranker's options through reranker_kwargs ----------------------------------------------------


def test_compressor_reranker_kwargs_are_used_and_serialised(v1_artifact: Path, v1_checkpoint: Path) -> None:
    from langchain_core.documents import Document
    from pydantic import ValidationError
    from sentence_transformers import CrossEncoder

    from mxbai_integrations.langchain import MxbaiCompressor

    kwargs = {"providers": CPU, "max_length": 16, "batch_size": 2}
    compressor = MxbaiCompressor(model=str(v1_artifact), top_n=None, reranker_kwargs=kwargs)
    docs = [Document(page_content=t, id=str(i)) for i, t in enumerate(DOCS)]
    ref = CrossEncoder(str(v1_checkpoint), device="cpu", max_length=16)
    want = np.asarray(ref.predict([(QUERY, d) for d in DOCS], batch_size=1, show_progress_bar=False))
    for adapter in (compressor, pickle.loads(pickle.dumps(compressor)),
                    MxbaiCompressor.model_validate_json(compressor.model_dump_json())):
        assert adapter.model_dump()["reranker_kwargs"] == kwargs
        out = adapter.compress_documents(docs, QUERY)
        assert adapter.reranker.max_length == 16 and adapter.reranker.batch_size == 2
        got = {d.id: d.metadata["relevance_score"] for d in out}
        np.testing.assert_allclose([got[str(i)] for i in range(len(DOCS))], want, atol=1e-3, rtol=0)
    with pytest.raises(ValidationError, match="reranker_kwargs.*unknown option.*max_lenght"):
        MxbaiCompressor(model=str(v1_artifact), reranker_kwargs={"max_lenght": 16})
    with pytest.raises(ValidationError, match="reranker_kwargs.*already loaded MxbaiReranker"):
        MxbaiCompressor(model=MxbaiReranker(v1_artifact, providers=CPU), reranker_kwargs={"max_length": 16})


def test_llama_index_reranker_kwargs_are_used_and_serialised(v1_artifact: Path) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, TextNode
    from pydantic import ValidationError

    from mxbai_integrations.llama_index import MxbaiRerank

    kwargs = {"providers": CPU, "max_length": 16, "max_batch_tokens": 64}
    rerank = MxbaiRerank(model=str(v1_artifact), top_n=3, reranker_kwargs=kwargs)
    nodes = [NodeWithScore(node=TextNode(text=t, id_=str(i))) for i, t in enumerate(DOCS)]
    first = [(n.node.node_id, n.score) for n in rerank.postprocess_nodes(nodes, query_str=QUERY)]
    for clone in (MxbaiRerank.from_dict(rerank.to_dict()), MxbaiRerank.from_json(rerank.to_json()),
                  pickle.loads(pickle.dumps(rerank))):
        assert clone.reranker_kwargs == kwargs
        assert clone.reranker.max_length == 16 and clone.reranker.max_batch_tokens == 64
        assert [(n.node.node_id, n.score) for n in clone.postprocess_nodes(nodes, query_str=QUERY)] == first
    short = MxbaiReranker(v1_artifact, providers=CPU, max_length=16).rank(QUERY, DOCS)[:3]
    assert [i for i, _ in first] == [str(r.index) for r in short]
    np.testing.assert_allclose([s for _, s in first], [r.score for r in short], atol=1e-5, rtol=0)
    with pytest.raises(ValidationError, match="reranker_kwargs.*session_options"):
        MxbaiRerank(model=str(v1_artifact), reranker_kwargs={"session_options": None})
