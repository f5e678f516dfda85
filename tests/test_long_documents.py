"""v1 documents longer than one pair holds: ``long_documents="max_chunk"`` against CrossEncoder's arithmetic.

Random weights carry no relevance, so these check the arithmetic: each chunk is the reference's
pair (query, the document's text from the chunk's start), the document's score is the best chunk's,
the first chunk is today's truncated pair, and a short document's score does not move.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from mxbai_integrations import ArgumentError, MxbaiReranker

QUERY = "which rivers cross the capital cities of europe"
WORDS = ("the river seine crosses paris and the thames crosses london while the spree flows through berlin "
         "capital city bridge water boat ﬁnance Ｔｈｅ x² 東京 museum history").split()


def _doc(seed: int, words: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


@pytest.fixture(scope="module")
def v1(v1_artifact: Path) -> MxbaiReranker:
    return MxbaiReranker(v1_artifact, providers=["cpu"], max_length=64)


@pytest.fixture(scope="module")
def cross_encoder(v1_checkpoint: Path):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(v1_checkpoint), device="cpu", max_length=64)


def _chunks(reranker: MxbaiReranker, document: str, stride: int = 16):
    scorer = reranker.scorer
    encoded = scorer.encode_documents(scorer.query(QUERY), [document], long_documents="max_chunk",
                                      chunk_stride=stride)
    return encoded


def test_each_chunk_is_the_reference_pair_of_the_text_from_its_start(v1: MxbaiReranker, cross_encoder) -> None:
    document = _doc(1, 400)
    encoded = _chunks(v1, document)
    assert len(encoded.rows) > 5 and encoded.spans is not None
    texts = [document[start:] for start, _ in encoded.spans]
    want_ids = cross_encoder.tokenizer([QUERY] * len(texts), texts, truncation=True, max_length=64)["input_ids"]
    assert encoded.rows == [list(ids) for ids in want_ids]
    ours = v1.scorer.activate(v1.scorer.raw_scores(encoded.rows, batch_size=1))
    want = cross_encoder.predict([(QUERY, t) for t in texts], batch_size=1, show_progress_bar=False)
    np.testing.assert_allclose(ours, want, atol=1e-4)


def test_chunks_overlap_and_cover_the_whole_document(v1: MxbaiReranker) -> None:
    document = _doc(2, 500)
    spans = _chunks(v1, document, stride=16).spans
    assert spans[0][0] == 0 and spans[-1][1] == len(document)
    for (start, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert start < next_start < end, "each chunk starts inside the one before (stride > 0)"
        assert document[next_start].isspace(), "chunks start where a word starts"
    no_overlap = _chunks(v1, document, stride=0).spans
    assert len(no_overlap) < len(spans)


def test_document_score_is_the_best_chunk_and_the_result_names_it(v1: MxbaiReranker, cross_encoder) -> None:
    documents = [_doc(3, 300), "the seine crosses paris.", _doc(4, 200)]
    results = v1.rank(QUERY, documents, long_documents="max_chunk", chunk_stride=16)
    for result in results:
        document = documents[result.index]
        spans = _chunks(v1, document).spans
        chunk_scores = cross_encoder.predict([(QUERY, document[s:]) for s, _ in spans], batch_size=1,
                                             show_progress_bar=False)
        assert result.score == pytest.approx(float(np.max(chunk_scores)), abs=1e-4)
        assert tuple(result.chunk) == spans[int(np.argmax(chunk_scores))]
    assert v1.rank(QUERY, documents)[0].chunk is None  # truncate (the default) names no chunk


def test_first_chunk_is_todays_truncated_pair_and_short_documents_do_not_move(v1: MxbaiReranker) -> None:
    long_doc, short_doc = _doc(5, 300), "the thames crosses london."
    encoded = _chunks(v1, long_doc)
    assert encoded.rows[0] == v1.encode(QUERY, [long_doc])[0]
    truncated = v1.score(QUERY, [long_doc, short_doc])
    first_chunk = v1.scorer.activate(v1.scorer.raw_scores([encoded.rows[0]]))[0]
    assert first_chunk == pytest.approx(truncated[0], abs=1e-6)
    chunked = v1.score(QUERY, [long_doc, short_doc], long_documents="max_chunk")
    assert chunked[1] == pytest.approx(truncated[1], abs=1e-6)
    assert chunked[0] >= truncated[0] - 1e-6


def test_max_chunks_and_bad_options(v1: MxbaiReranker, v2_artifact: Path) -> None:
    document = _doc(6, 400)
    scorer = v1.scorer
    assert len(scorer.encode_documents(scorer.query(QUERY), [document], long_documents="max_chunk",
                                       max_chunks=2).rows) == 2
    with pytest.raises(ArgumentError, match="long_documents must be one of"):
        v1.score(QUERY, [document], long_documents="chunks")
    with pytest.raises(ArgumentError, match="chunk_stride must be an int >= 0"):
        MxbaiReranker(v1.path, providers=["cpu"], chunk_stride=-1)
    v2 = MxbaiReranker(v2_artifact, providers=["cpu"])
    with pytest.raises(ArgumentError, match="'max_chunk' is for v1 models"):
        v2.score(QUERY, [document], long_documents="max_chunk")


def test_reranker_default_comes_from_its_options(v1_artifact: Path) -> None:
    document = _doc(7, 300)
    default = MxbaiReranker(v1_artifact, providers=["cpu"], max_length=64, long_documents="max_chunk")
    explicit = MxbaiReranker(v1_artifact, providers=["cpu"], max_length=64)
    assert default.rank(QUERY, [document])[0].score == pytest.approx(
        explicit.rank(QUERY, [document], long_documents="max_chunk")[0].score, abs=1e-6)


def test_cohere_v1_max_chunks_per_doc_scores_the_best_chunk_over_http(v1_artifact: Path, v2_artifact: Path) -> None:
    """The server's Cohere v1 field max_chunks_per_doc: each document's score is its best chunk's (max_chunk)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mxbai_integrations.serve import create_app

    reranker = MxbaiReranker(v1_artifact, providers=["cpu"], max_length=64)
    documents = [_doc(8, 300), "the seine crosses paris.", _doc(9, 200)]
    want = reranker.score(QUERY, documents, long_documents="max_chunk")
    want_two = [max(reranker.scorer.activate(reranker.scorer.raw_scores(
        _chunks(reranker, d).rows[:2]))) for d in documents]
    with TestClient(create_app(reranker)) as client:
        body = {"query": QUERY, "documents": documents}
        answer = client.post("/v1/rerank", json={**body, "max_chunks_per_doc": 1000}).json()
        got = {r["index"]: r["relevance_score"] for r in answer["results"]}
        assert [got[i] for i in range(3)] == pytest.approx(want, abs=1e-5)
        answer = client.post("/v1/rerank", json={**body, "max_chunks_per_doc": 2}).json()
        got = {r["index"]: r["relevance_score"] for r in answer["results"]}
        assert [got[i] for i in range(3)] == pytest.approx(want_two, abs=1e-5)
        plain = client.post("/v1/rerank", json=body).json()  # default: truncate, like the reference
        got = {r["index"]: r["relevance_score"] for r in plain["results"]}
        assert [got[i] for i in range(3)] == pytest.approx(reranker.score(QUERY, documents), abs=1e-5)
    with TestClient(create_app(MxbaiReranker(v2_artifact, providers=["cpu"]))) as client:
        refused = client.post("/v1/rerank", json={"query": QUERY, "documents": ["a"], "max_chunks_per_doc": 2})
        assert refused.status_code == 422 and refused.json()["field"] == "max_chunks_per_doc"
