"""Clients nobody here wrote, pointed at the server over a real socket: the cohere SDK, LangChain, LlamaIndex.

Each returns what ``MxbaiReranker.rank`` returns for the same texts: the same order and scores.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is not installed")
pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")
cohere = pytest.importorskip("cohere", reason="the cohere SDK (test extra) is not installed")

from serve_helpers import LiveServer  # noqa: E402

from mxbai_integrations import MxbaiReranker  # noqa: E402
from mxbai_integrations.serve import create_app  # noqa: E402

QUERY = "Which city is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower was completed in 1889. " * 8,
    "Bananas are yellow.",
    "La tour Eiffel se trouve à Paris.",
    "France",
]


@pytest.fixture(scope="module", params=["v1", "v2"])
def served(request):
    """(reranker, base_url) for a server of each family, on 127.0.0.1 and a free port."""
    artifact = request.getfixturevalue(f"{request.param}_artifact")
    reranker = MxbaiReranker(artifact)
    with LiveServer(create_app(reranker)) as server:
        yield reranker, server.url


def test_cohere_client_v2_rerank(served):
    reranker, url = served
    client = cohere.ClientV2(api_key="x", base_url=url)
    response = client.rerank(model="mxbai-rerank", query=QUERY, documents=DOCS, top_n=3)
    assert [(r.index, r.relevance_score) for r in response.results] == \
        [(r.index, r.score) for r in reranker.rank(QUERY, DOCS, top_k=3)]
    assert response.id and response.meta.api_version.version == "2"


def test_cohere_client_v1_rerank_with_documents(served):
    reranker, url = served
    client = cohere.Client(api_key="x", base_url=url)
    response = client.rerank(query=QUERY, documents=[{"text": d} for d in DOCS], return_documents=True)
    expected = reranker.rank(QUERY, DOCS)
    assert [(r.index, r.relevance_score, r.document.text) for r in response.results] == \
        [(r.index, r.score, r.document) for r in expected]


def test_cohere_sdk_raises_its_own_error_for_a_bad_request(served):
    _, url = served
    client = cohere.ClientV2(api_key="x", base_url=url)
    with pytest.raises(cohere.core.ApiError) as info:
        client.rerank(model="m", query="   ", documents=DOCS)
    assert info.value.status_code == 422 and info.value.body["field"] == "query"


def test_langchain_cohere_rerank_compressor(served):
    pytest.importorskip("langchain_cohere", reason="langchain-cohere (test extra) is not installed")
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    reranker, url = served
    compressor = CohereRerank(cohere_api_key="x", base_url=url, model="mxbai-rerank", top_n=3)
    documents = [Document(page_content=d, metadata={"n": i}, id=f"doc-{i}") for i, d in enumerate(DOCS)]
    out = compressor.compress_documents(documents, QUERY)
    expected = reranker.rank(QUERY, DOCS, top_k=3)
    assert [(d.metadata["n"], d.metadata["relevance_score"]) for d in out] == [(r.index, r.score) for r in expected]


def test_llama_index_cohere_rerank_postprocessor(served):
    pytest.importorskip("llama_index.postprocessor.cohere_rerank",
                        reason="llama-index-postprocessor-cohere-rerank (test extra) is not installed")
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    reranker, url = served
    nodes = [NodeWithScore(node=TextNode(text=d, id_=f"n{i}"), score=0.0) for i, d in enumerate(DOCS)]
    postprocessor = CohereRerank(api_key="x", base_url=url, model="mxbai-rerank", top_n=4)
    out = postprocessor.postprocess_nodes(nodes, query_str=QUERY)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]  # what the client sends
    expected = reranker.rank(QUERY, texts, top_k=4)
    assert [(n.node.node_id, n.score) for n in out] == [(f"n{r.index}", r.score) for r in expected]
