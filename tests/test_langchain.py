"""MxbaiCompressor in real LangChain pipelines, on the tiny exported artifacts (no mocks of our code)."""

from __future__ import annotations

import asyncio
import copy
import inspect
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ValidationError

import mxbai_integrations.langchain as lc
from mxbai_integrations import MxbaiReranker
from mxbai_integrations.langchain import MxbaiCompressor

QUERY = "How do rerankers reorder search results?"
TEXTS = [
    "A reranker scores each query and document pair with a cross-encoder.",
    "The Eiffel Tower is in Paris and was finished in 1889.",
    "Bananas are rich in potassium.",
    "Retrieval first gathers candidates, then a reranker puts the best on top.",
    "ONNX Runtime runs exported graphs on CPUs and GPUs.",
    "The recipe needs two eggs, flour and a pinch of salt.",
    "Search engines sort results by relevance to the query.",
    "Qwen2 is a decoder-only language model family.",
]


@pytest.fixture(scope="module")
def reranker(v2_artifact: Path) -> MxbaiReranker:
    return MxbaiReranker(v2_artifact)


@pytest.fixture
def docs() -> list[Document]:
    return [
        Document(page_content=t, id=f"doc-{i}", metadata={"source": f"file{i}.txt", "page": i})
        for i, t in enumerate(TEXTS)
    ]


def expected_ids(reranker: MxbaiReranker, docs: list[Document], query: str = QUERY, **kw: Any) -> list[str]:
    return [docs[r.index].id for r in reranker.rank(query, [d.page_content for d in docs], **kw)]


# -- API surface -------------------------------------------------------------------------------


def test_all_is_pinned() -> None:
    assert lc.__all__ == ["MxbaiCompressor"]
    assert issubclass(MxbaiCompressor, BaseDocumentCompressor)


def test_compress_documents_has_the_base_class_signature() -> None:
    ours = inspect.signature(MxbaiCompressor.compress_documents)
    base = inspect.signature(BaseDocumentCompressor.compress_documents)
    assert list(ours.parameters) == list(base.parameters) == ["self", "documents", "query", "callbacks"]
    for name in base.parameters:
        assert ours.parameters[name].kind == base.parameters[name].kind
        assert ours.parameters[name].default == base.parameters[name].default
    assert inspect.signature(MxbaiCompressor.acompress_documents).parameters.keys() == base.parameters.keys()


# -- results -----------------------------------------------------------------------------------


def test_order_ids_and_scores_match_the_reranker(reranker: MxbaiReranker, docs: list[Document]) -> None:
    out = MxbaiCompressor(model=reranker, top_n=None).compress_documents(docs, QUERY)
    ranked = reranker.rank(QUERY, [d.page_content for d in docs])
    assert [d.id for d in out] == [docs[r.index].id for r in ranked]
    assert [d.page_content for d in out] == [r.document for r in ranked]
    for d, r in zip(out, ranked, strict=True):
        assert type(d.metadata["relevance_score"]) is float
        assert d.metadata["relevance_score"] == r.score
        original = docs[r.index]
        assert d.metadata == {**original.metadata, "relevance_score": r.score}
        assert type(d) is Document
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)


def _reference_order(scores: np.ndarray) -> list[int]:
    """Best first, ties by index: the order mxbai_rerank's rank() uses."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


@pytest.mark.parametrize("family, instruction", [
    ("v1", None), ("v2", None), ("v2", "Find passages that explain reranking."),
])
def test_end_to_end_scores_match_the_reference_library(
    family: str, instruction: str | None, docs: list[Document], request: pytest.FixtureRequest
) -> None:
    """Against CrossEncoder / mxbai_rerank on the same checkpoint, not MxbaiReranker: a scoring bug shows here."""
    artifact = request.getfixturevalue(f"{family}_artifact")
    ref = request.getfixturevalue(f"{family}_reference")
    if family == "v1":
        want = np.asarray(ref.predict([(QUERY, t) for t in TEXTS], show_progress_bar=False), np.float64)
    else:
        want = ref.predict([QUERY] * len(TEXTS), TEXTS, instruction=instruction).double().numpy()
    assert want.std() > 1e-3, "reference scores must spread, or the order means nothing"
    compressor = MxbaiCompressor(model=str(artifact), top_n=None, instruction=instruction)
    out = compressor.compress_documents(docs, QUERY)
    assert [d.id for d in out] == [docs[i].id for i in _reference_order(want)]
    got = {d.id: d.metadata["relevance_score"] for d in out}
    np.testing.assert_allclose([got[d.id] for d in docs], want, atol=1e-3, rtol=0)


def test_model_given_as_a_path_loads_the_same_artifact(
    v2_artifact: Path, reranker: MxbaiReranker, docs: list[Document]
) -> None:
    out = MxbaiCompressor(model=str(v2_artifact), top_n=4).compress_documents(docs, QUERY)
    assert [d.id for d in out] == expected_ids(reranker, docs)[:4]


def test_v1_artifact_scores_are_probabilities(v1_artifact: Path, docs: list[Document]) -> None:
    v1 = MxbaiReranker(v1_artifact)
    out = MxbaiCompressor(model=v1, top_n=None).compress_documents(docs, QUERY)
    assert [d.id for d in out] == expected_ids(v1, docs)
    assert all(0.0 < d.metadata["relevance_score"] < 1.0 for d in out)
    with pytest.raises(ValueError, match="instruction"):
        MxbaiCompressor(model=v1, instruction="Find answers.").compress_documents(docs, QUERY)


def test_instruction_and_normalize_are_passed_to_the_reranker(reranker: MxbaiReranker, docs: list[Document]) -> None:
    inst = "Given a question, find passages that answer it."
    out = MxbaiCompressor(model=reranker, top_n=None, instruction=inst, normalize=True, batch_size=3)
    got = out.compress_documents(docs, QUERY)
    ranked = reranker.rank(QUERY, TEXTS, instruction=inst, normalize=True)
    assert [d.id for d in got] == [docs[r.index].id for r in ranked]
    assert [d.metadata["relevance_score"] for d in got] == pytest.approx([r.score for r in ranked], abs=1e-5)
    assert all(0.0 < d.metadata["relevance_score"] < 1.0 for d in got)


def test_inputs_are_not_mutated(reranker: MxbaiReranker, docs: list[Document]) -> None:
    before = [d.model_dump() for d in docs]
    metadata_objects = [d.metadata for d in docs]
    out = MxbaiCompressor(model=reranker, top_n=None).compress_documents(docs, QUERY)
    assert [d.model_dump() for d in docs] == before
    assert all("relevance_score" not in d.metadata for d in docs)
    assert not any(o is d for o in out for d in docs)
    assert not any(o.metadata is m for o in out for m in metadata_objects)


def test_relevance_score_replaces_an_existing_key(reranker: MxbaiReranker) -> None:
    docs = [Document(page_content=t, id=str(i), metadata={"relevance_score": "stale"}) for i, t in enumerate(TEXTS)]
    out = MxbaiCompressor(model=reranker, top_n=None).compress_documents(docs, QUERY)
    assert all(type(d.metadata["relevance_score"]) is float for d in out)
    assert all(d.metadata["relevance_score"] == "stale" for d in docs)


def test_top_n_default_and_none(reranker: MxbaiReranker, docs: list[Document]) -> None:
    assert MxbaiCompressor.model_fields["top_n"].default == 3
    assert [d.id for d in MxbaiCompressor(model=reranker).compress_documents(docs, QUERY)] == expected_ids(
        reranker, docs
    )[:3]
    assert len(MxbaiCompressor(model=reranker, top_n=None).compress_documents(docs, QUERY)) == len(docs)
    assert len(MxbaiCompressor(model=reranker, top_n=100).compress_documents(docs, QUERY)) == len(docs)


def test_score_threshold_is_inclusive_and_applied_before_top_n(reranker: MxbaiReranker, docs: list[Document]) -> None:
    ranked = reranker.rank(QUERY, TEXTS)
    fifth = ranked[4].score
    ids = [docs[r.index].id for r in ranked]

    def run(**kw: Any) -> list[str]:
        return [d.id for d in MxbaiCompressor(model=reranker, **kw).compress_documents(docs, QUERY)]

    assert run(top_n=None, score_threshold=fifth) == ids[:5]  # a score equal to the threshold is kept
    assert run(top_n=2, score_threshold=fifth) == ids[:2]
    assert run(top_n=7, score_threshold=fifth) == ids[:5]
    assert run(top_n=3, score_threshold=ranked[0].score + 1.0) == []
    assert run(top_n=None, score_threshold=ranked[-1].score - 1.0) == ids
    assert run(top_n=None, score_threshold=int(ranked[-1].score) - 1) == ids  # an int threshold is fine


def test_empty_input_returns_empty_list_without_loading_the_model(tmp_path: Path, docs: list[Document]) -> None:
    compressor = MxbaiCompressor(model=tmp_path / "no-such-artifact")
    assert compressor.compress_documents([], QUERY) == []
    assert asyncio.run(compressor.acompress_documents((), QUERY)) == []
    assert compressor._shared.loaded(compressor.model) is None
    with pytest.raises(FileNotFoundError, match="no-such-artifact"):
        compressor.compress_documents(docs, QUERY)


def test_reranker_is_created_lazily_once_and_shared(v2_artifact: Path, reranker: MxbaiReranker) -> None:
    compressor = MxbaiCompressor(model=v2_artifact)
    assert compressor._shared.loaded(compressor.model) is None
    docs = [Document(page_content=t, id=str(i)) for i, t in enumerate(TEXTS)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: compressor.compress_documents(docs, QUERY), range(16)))
    assert all([d.id for d in r] == [d.id for d in results[0]] for r in results)
    loaded = compressor.reranker
    assert isinstance(loaded, MxbaiReranker) and compressor.reranker is loaded
    compressor.compress_documents(docs, QUERY)
    assert compressor.reranker is loaded
    # a MxbaiReranker given as model is used as is
    assert MxbaiCompressor(model=reranker).reranker is reranker


def test_default_model_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, v2_artifact: Path, reranker: MxbaiReranker, docs: list[Document]
) -> None:
    monkeypatch.setenv("MXBAI_RERANK_MODEL", str(v2_artifact))
    compressor = MxbaiCompressor()
    assert compressor.model is None
    assert [d.id for d in compressor.compress_documents(docs, QUERY)] == expected_ids(reranker, docs)[:3]
    assert compressor.reranker.path == v2_artifact


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": -2}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"top_n": 2.0}, "top_n"),
        ({"score_threshold": "0.5"}, "score_threshold"),
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"score_threshold": True}, "score_threshold"),
        ({"batch_size": 0}, "batch_size"),
        ({"instruction": 3}, "instruction"),
        ({"model": 3}, "model"),
        ({"top_k": 3}, "top_k"),  # extra="forbid": a misspelt option is an error, not ignored
    ],
)
def test_bad_options_are_rejected_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field) as info:
        MxbaiCompressor(**kwargs)
    assert isinstance(info.value, ValueError)


def test_bad_call_arguments_raise_before_any_work(reranker: MxbaiReranker, docs: list[Document]) -> None:
    compressor = MxbaiCompressor(model=reranker)
    with pytest.raises(ValueError, match="query"):
        compressor.compress_documents(docs, "")
    with pytest.raises(ValueError, match="query"):
        compressor.compress_documents([], "   ")
    with pytest.raises(TypeError, match="query"):
        compressor.compress_documents(docs, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        compressor.compress_documents([docs[0], "plain text"], QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="documents"):
        compressor.compress_documents("a string is not a list of documents", QUERY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query"):
        asyncio.run(compressor.acompress_documents(docs, ""))


# -- serialisation -----------------------------------------------------------------------------


def test_serialisation_writes_the_model_as_a_string_and_round_trips(
    v2_artifact: Path, reranker: MxbaiReranker, docs: list[Document]
) -> None:
    compressor = MxbaiCompressor(model=reranker, top_n=2, score_threshold=-100.0, normalize=False, batch_size=4)
    compressor.compress_documents(docs, QUERY)
    dumped = compressor.model_dump()
    assert dumped == {
        "model": str(v2_artifact),
        "top_n": 2,
        "score_threshold": -100.0,
        "instruction": None,
        "normalize": False,
        "batch_size": 4,
        "reranker_kwargs": {},
    }
    assert MxbaiCompressor(model=v2_artifact).model_dump()["model"] == str(v2_artifact)
    assert MxbaiCompressor().model_dump()["model"] is None
    assert MxbaiCompressor.model_validate(dumped).model_dump() == dumped
    assert MxbaiCompressor.model_validate_json(compressor.model_dump_json()).model_dump() == dumped
    clone = pickle.loads(pickle.dumps(compressor))
    assert clone.model_dump() == dumped
    assert clone._shared.loaded(clone.model) is None  # the session is not serialised; it is loaded again on first use
    assert [d.id for d in clone.compress_documents(docs, QUERY)] == expected_ids(reranker, docs)[:2]


def test_copies_share_the_loaded_reranker(v2_artifact: Path, docs: list[Document]) -> None:
    compressor = MxbaiCompressor(model=v2_artifact, top_n=2)
    loaded = compressor.reranker
    for clone in (copy.deepcopy(compressor), compressor.model_copy(deep=True), copy.copy(compressor)):
        assert clone.reranker is loaded
        assert clone.compress_documents(docs, QUERY) == compressor.compress_documents(docs, QUERY)


# -- async -------------------------------------------------------------------------------------


def test_acompress_matches_compress(reranker: MxbaiReranker, docs: list[Document]) -> None:
    compressor = MxbaiCompressor(model=reranker, top_n=4)
    assert asyncio.run(compressor.acompress_documents(docs, QUERY)) == compressor.compress_documents(docs, QUERY)


def test_acompress_keeps_the_event_loop_responsive(reranker: MxbaiReranker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another task runs on the loop while the scores are computed: shown by a handshake, not by timing.

    Scoring waits until a task on the event loop has run. A blocking implementation scores on the
    loop's own thread, so that task cannot run and the wait fails; no millisecond ticks to flake on a
    loaded machine.
    """
    many = [Document(page_content=f"{TEXTS[i % len(TEXTS)]} Variant {i}.", id=str(i)) for i in range(40)]
    compressor = MxbaiCompressor(model=reranker, top_n=5)
    scoring, loop_ran = threading.Event(), threading.Event()
    real_raw_scores = reranker.scorer.raw_scores

    def raw_scores_after_the_loop_ran(*args: Any, **kwargs: Any) -> Any:
        scoring.set()
        assert loop_ran.wait(timeout=20), "the event loop did not run while scoring: acompress blocks it"
        return real_raw_scores(*args, **kwargs)

    monkeypatch.setattr(reranker.scorer, "raw_scores", raw_scores_after_the_loop_ran)

    async def main() -> list[Document]:
        async def other_task() -> None:
            while not scoring.is_set():
                await asyncio.sleep(0.001)
            loop_ran.set()

        task = asyncio.create_task(other_task())
        out = await compressor.acompress_documents(many, QUERY)
        await task
        return list(out)

    out = asyncio.run(main())
    assert scoring.is_set() and loop_ran.is_set()
    assert [d.id for d in out] == [many[r.index].id for r in reranker.rank(QUERY, [d.page_content for d in many])][:5]


def test_many_concurrent_acompress_calls(reranker: MxbaiReranker, docs: list[Document]) -> None:
    compressor = MxbaiCompressor(model=reranker, top_n=None)
    queries = [f"{QUERY} ({i})" for i in range(24)]

    async def main() -> list[list[Document]]:
        return list(await asyncio.gather(*(compressor.acompress_documents(docs, q) for q in queries)))

    results = asyncio.run(main())
    for q, out in zip(queries, results, strict=True):
        assert [d.id for d in out] == expected_ids(reranker, docs, query=q)


# -- pipelines ---------------------------------------------------------------------------------


@pytest.fixture
def base_retriever(docs: list[Document]) -> Any:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(docs)
    return store.as_retriever(search_kwargs={"k": 6})


def test_contextual_compression_retriever_invoke_and_ainvoke(
    reranker: MxbaiReranker, docs: list[Document], base_retriever: Any
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    retriever = ContextualCompressionRetriever(
        base_compressor=MxbaiCompressor(model=reranker, top_n=3), base_retriever=base_retriever
    )
    candidates = base_retriever.invoke(QUERY)
    assert len(candidates) == 6 and all(d.id for d in candidates)
    want = expected_ids(reranker, candidates)[:3]
    by_id = {d.id: d for d in docs}
    for out in (retriever.invoke(QUERY), asyncio.run(retriever.ainvoke(QUERY))):
        assert [d.id for d in out] == want
        for d in out:  # the stored document, id and metadata intact, plus the score
            assert d.page_content == by_id[d.id].page_content
            assert d.metadata == {**by_id[d.id].metadata, "relevance_score": d.metadata["relevance_score"]}
            assert type(d.metadata["relevance_score"]) is float


class _RunRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[tuple[str | None, UUID, UUID | None, Any]] = []
        self.ends: dict[UUID, Any] = {}
        self.retriever_runs: list[UUID] = []
        self.lock = threading.Lock()

    def on_retriever_start(self, serialized: Any, query: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.retriever_runs.append(run_id)

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       **kwargs: Any) -> None:
        with self.lock:
            self.starts.append((kwargs.get("name"), run_id, parent_run_id, inputs))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self.lock:
            self.ends[run_id] = outputs


def test_callbacks_see_the_rerank_step_as_a_child_run(reranker: MxbaiReranker, base_retriever: Any) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    retriever = ContextualCompressionRetriever(
        base_compressor=MxbaiCompressor(model=reranker, top_n=2), base_retriever=base_retriever
    )
    for invoke in (lambda cfg: retriever.invoke(QUERY, config=cfg),
                   lambda cfg: asyncio.run(retriever.ainvoke(QUERY, config=cfg))):
        recorder = _RunRecorder()
        out = invoke({"callbacks": [recorder]})
        runs = [s for s in recorder.starts if s[0] == "MxbaiCompressor"]
        assert len(runs) == 1
        _, run_id, parent, inputs = runs[0]
        assert parent == recorder.retriever_runs[0]
        assert inputs["query"] == QUERY and len(inputs["documents"]) == 6
        assert recorder.ends[run_id] == {"documents": out}


def test_lcel_chain(reranker: MxbaiReranker, base_retriever: Any) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    retriever = ContextualCompressionRetriever(
        base_compressor=MxbaiCompressor(model=reranker, top_n=3), base_retriever=base_retriever
    )

    def format_docs(docs: list[Document]) -> str:
        return "\n".join(f"[{d.id}] {d.page_content}" for d in docs)

    chain = {"context": retriever | RunnableLambda(format_docs), "question": RunnablePassthrough()} | RunnableLambda(
        lambda x: f"Q: {x['question']}\n{x['context']}"
    )
    want = [f"[{i}]" for i in expected_ids(reranker, base_retriever.invoke(QUERY))[:3]]
    for text in (chain.invoke(QUERY), asyncio.run(chain.ainvoke(QUERY)), chain.batch([QUERY, QUERY])[1]):
        lines = text.splitlines()
        assert lines[0] == f"Q: {QUERY}"
        assert [line.split()[0] for line in lines[1:]] == want
