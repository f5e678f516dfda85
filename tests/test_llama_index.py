"""MxbaiRerank in real LlamaIndex pipelines, on the tiny exported artifacts (no mocks of our code)."""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="the llama-index extra is not installed")

from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler  # noqa: E402
from llama_index.core.embeddings import MockEmbedding  # noqa: E402
from llama_index.core.instrumentation import get_dispatcher  # noqa: E402
from llama_index.core.instrumentation.event_handlers import BaseEventHandler  # noqa: E402
from llama_index.core.instrumentation.events import BaseEvent  # noqa: E402
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.postprocessor.types import BaseNodePostprocessor  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode  # noqa: E402
from pydantic import ValidationError  # noqa: E402

import mxbai_integrations.llama_index as li  # noqa: E402
from mxbai_integrations import MxbaiReranker  # noqa: E402
from mxbai_integrations.llama_index import MxbaiRerank  # noqa: E402

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


def make_nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(text=t, id_=f"node-{i}", metadata={"source": f"file{i}.txt", "page": i}),
            score=1.0 - i / 10,
        )
        for i, t in enumerate(TEXTS)
    ]


@pytest.fixture
def nodes() -> list[NodeWithScore]:
    return make_nodes()


def expected(
    reranker: MxbaiReranker, nodes: list[NodeWithScore], mode: MetadataMode = MetadataMode.EMBED, **kw: Any
) -> list[tuple[str, float]]:
    texts = [n.node.get_content(metadata_mode=mode) for n in nodes]
    return [(nodes[r.index].node.node_id, r.score) for r in reranker.rank(QUERY, texts, **kw)]


def ids(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.node_id for n in nodes]


class _RerankEvents(BaseEventHandler):
    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "_RerankEvents"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, (ReRankStartEvent, ReRankEndEvent)):
            self.events.append(event)


@pytest.fixture
def rerank_events() -> Iterator[list[BaseEvent]]:
    """Instrumentation events seen by a handler on the root dispatcher (removed afterwards)."""
    handler = _RerankEvents(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    try:
        yield handler.events
    finally:
        root.event_handlers.remove(handler)


# -- API surface -------------------------------------------------------------------------------


@pytest.mark.parametrize("family, instruction", [
    ("v1", None), ("v2", None), ("v2", "Find passages that explain reranking."),
])
def test_end_to_end_scores_match_the_reference_library(
    family: str, instruction: str | None, nodes: list[NodeWithScore], request: pytest.FixtureRequest
) -> None:
    """Against CrossEncoder / mxbai_rerank on the same checkpoint, not MxbaiReranker: a scoring bug shows here."""
    artifact = request.getfixturevalue(f"{family}_artifact")
    ref = request.getfixturevalue(f"{family}_reference")
    if family == "v1":
        want = np.asarray(ref.predict([(QUERY, t) for t in TEXTS], show_progress_bar=False), np.float64)
    else:
        want = ref.predict([QUERY] * len(TEXTS), TEXTS, instruction=instruction).double().numpy()
    assert want.std() > 1e-3, "reference scores must spread, or the order means nothing"
    rerank = MxbaiRerank(model=str(artifact), top_n=len(TEXTS), instruction=instruction,
                         metadata_mode=MetadataMode.NONE)
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)
    order = sorted(range(len(TEXTS)), key=lambda i: (-want[i], i))  # best first, ties by index (mxbai_rerank)
    assert ids(out) == [nodes[i].node.node_id for i in order]
    got = {n.node.node_id: n.score for n in out}
    np.testing.assert_allclose([got[n.node.node_id] for n in nodes], want, atol=1e-3, rtol=0)


def test_all_and_class_name_are_pinned() -> None:
    assert li.__all__ == ["MxbaiRerank"]
    assert issubclass(MxbaiRerank, BaseNodePostprocessor)
    assert MxbaiRerank.class_name() == "MxbaiRerank"
    defaults = MxbaiRerank()
    assert (defaults.top_n, defaults.metadata_mode, defaults.keep_retrieval_score) == (5, MetadataMode.EMBED, False)
    assert (defaults.model, defaults.score_threshold, defaults.instruction, defaults.normalize) == (
        None, None, None, False)


# -- results -----------------------------------------------------------------------------------


def test_order_and_scores_match_the_reranker(reranker: MxbaiReranker, nodes: list[NodeWithScore]) -> None:
    out = MxbaiRerank(model=reranker, top_n=len(nodes)).postprocess_nodes(nodes, query_str=QUERY)
    want = expected(reranker, nodes)
    assert [(n.node.node_id, n.score) for n in out] == want
    assert all(type(n.score) is float for n in out)
    by_id = {n.node.node_id: n.node for n in nodes}
    assert all(n.node is by_id[n.node.node_id] for n in out)  # the same node, metadata untouched


def test_inputs_are_not_mutated(reranker: MxbaiReranker, nodes: list[NodeWithScore]) -> None:
    before = [(n.score, n.node.model_dump()) for n in nodes]
    for keep in (False, True):
        out = MxbaiRerank(model=reranker, top_n=8, keep_retrieval_score=keep).postprocess_nodes(
            nodes, QueryBundle(QUERY)
        )
        assert [(n.score, n.node.model_dump()) for n in nodes] == before
        assert not any(o is n for o in out for n in nodes)


def test_keep_retrieval_score_goes_on_a_copy_and_stays_out_of_prompts(
    reranker: MxbaiReranker, nodes: list[NodeWithScore]
) -> None:
    out = MxbaiRerank(model=reranker, top_n=3, keep_retrieval_score=True).postprocess_nodes(nodes, query_str=QUERY)
    by_id = {n.node.node_id: n for n in nodes}
    assert [(n.node.node_id, n.score) for n in out] == expected(reranker, nodes)[:3]
    for n in out:
        src = by_id[n.node.node_id]
        assert n.node is not src.node
        assert n.node.metadata == {**src.node.metadata, "retrieval_score": src.score}
        assert "retrieval_score" not in src.node.metadata
        assert n.node.get_content(MetadataMode.LLM) == src.node.get_content(MetadataMode.LLM)
        assert n.node.get_content(MetadataMode.EMBED) == src.node.get_content(MetadataMode.EMBED)
        assert n.node.text == src.node.text and n.node.node_id == src.node.node_id


@pytest.mark.parametrize("mode", [MetadataMode.EMBED, MetadataMode.NONE, MetadataMode.ALL])
def test_metadata_mode_selects_the_scored_text(
    reranker: MxbaiReranker, nodes: list[NodeWithScore], mode: MetadataMode
) -> None:
    out = MxbaiRerank(model=reranker, top_n=8, metadata_mode=mode).postprocess_nodes(nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == expected(reranker, nodes, mode)


def test_v1_artifact_scores_are_probabilities(v1_artifact: Path, nodes: list[NodeWithScore]) -> None:
    v1 = MxbaiReranker(v1_artifact)
    out = MxbaiRerank(model=v1, top_n=8).postprocess_nodes(nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == expected(v1, nodes)
    assert all(0.0 < n.score < 1.0 for n in out)
    with pytest.raises(ValueError, match="instruction"):
        MxbaiRerank(model=v1, instruction="Find answers.").postprocess_nodes(nodes, query_str=QUERY)


def test_instruction_and_normalize_are_passed_to_the_reranker(
    reranker: MxbaiReranker, nodes: list[NodeWithScore]
) -> None:
    inst = "Given a question, find passages that answer it."
    rerank = MxbaiRerank(model=reranker, top_n=8, instruction=inst, normalize=True, batch_size=3)
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)
    want = expected(reranker, nodes, instruction=inst, normalize=True)
    assert ids(out) == [i for i, _ in want]
    assert [n.score for n in out] == pytest.approx([s for _, s in want], abs=1e-5)
    assert all(0.0 < n.score < 1.0 for n in out)


def test_top_n_and_inclusive_score_threshold(reranker: MxbaiReranker, nodes: list[NodeWithScore]) -> None:
    want = expected(reranker, nodes)
    fifth = want[4][1]
    order = [i for i, _ in want]

    def run(**kw: Any) -> list[str]:
        return ids(MxbaiRerank(model=reranker, **kw).postprocess_nodes(nodes, query_str=QUERY))

    assert run() == order[:5]
    assert run(top_n=2) == order[:2]
    assert run(top_n=8, score_threshold=fifth) == order[:5]  # a score equal to the threshold is kept
    assert run(top_n=3, score_threshold=fifth) == order[:3]
    assert run(top_n=3, score_threshold=want[0][1] + 1.0) == []


def test_empty_input_emits_both_events_without_loading_the_model(
    tmp_path: Path, rerank_events: list[BaseEvent]
) -> None:
    rerank = MxbaiRerank(model=tmp_path / "no-such-artifact")
    assert rerank.postprocess_nodes([], query_str=QUERY) == []
    assert asyncio.run(rerank.apostprocess_nodes([], query_str=QUERY)) == []
    assert rerank._shared.loaded(rerank.model) is None
    assert [type(e) for e in rerank_events] == [ReRankStartEvent, ReRankEndEvent] * 2
    assert rerank_events[0].model_name == str(tmp_path / "no-such-artifact")
    assert rerank_events[1].nodes == []
    with pytest.raises(FileNotFoundError, match="no-such-artifact"):
        rerank.postprocess_nodes(make_nodes(), query_str=QUERY)


def test_lazy_shared_reranker(v2_artifact: Path, reranker: MxbaiReranker, nodes: list[NodeWithScore]) -> None:
    rerank = MxbaiRerank(model=v2_artifact, top_n=3)
    assert rerank._shared.loaded(rerank.model) is None
    results: list[list[str]] = []

    def call() -> None:
        results.append(ids(rerank.postprocess_nodes(make_nodes(), query_str=QUERY)))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[i for i, _ in expected(reranker, nodes)[:3]]] * 8
    loaded = rerank.reranker
    assert isinstance(loaded, MxbaiReranker) and rerank.reranker is loaded
    assert MxbaiRerank(model=reranker).reranker is reranker
    for clone in (copy.deepcopy(rerank), rerank.model_copy(deep=True)):
        assert clone.reranker is loaded


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"top_n": 0}, "top_n"),
        ({"top_n": -1}, "top_n"),
        ({"top_n": True}, "top_n"),
        ({"top_n": None}, "top_n"),
        ({"score_threshold": "0.5"}, "score_threshold"),
        ({"score_threshold": float("inf")}, "score_threshold"),
        ({"batch_size": 0}, "batch_size"),
        ({"instruction": 1}, "instruction"),
        ({"metadata_mode": "everything"}, "metadata_mode"),
        ({"model": 1.5}, "model"),
        ({"top_k": 3}, "top_k"),  # extra="forbid": a misspelt option is an error, not ignored
    ],
)
def test_bad_options_are_rejected_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field) as info:
        MxbaiRerank(**kwargs)
    assert isinstance(info.value, ValueError)


def test_bad_call_arguments(
    reranker: MxbaiReranker, nodes: list[NodeWithScore], rerank_events: list[BaseEvent]
) -> None:
    rerank = MxbaiRerank(model=reranker)
    with pytest.raises(ValueError, match="query_bundle"):
        rerank.postprocess_nodes(nodes)
    assert [type(e) for e in rerank_events] == [ReRankStartEvent]  # the start event precedes the error
    assert rerank_events[0].query is None
    with pytest.raises(ValueError, match="query"):
        rerank.postprocess_nodes(nodes, query_str="  ")
    with pytest.raises(ValueError, match="query_bundle"):
        asyncio.run(rerank.apostprocess_nodes(nodes))
    with pytest.raises(TypeError, match=r"nodes\[1\]"):
        rerank.postprocess_nodes([nodes[0], "plain text"], query_str=QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"nodes\[0\]"):
        rerank.postprocess_nodes([nodes[0].node], query_str=QUERY)  # type: ignore[list-item]


# -- events and callbacks ------------------------------------------------------------------------


def test_instrumentation_and_callback_events(
    reranker: MxbaiReranker, nodes: list[NodeWithScore], rerank_events: list[BaseEvent]
) -> None:
    debug = LlamaDebugHandler()
    rerank = MxbaiRerank(model=reranker, top_n=3, callback_manager=CallbackManager([debug]))
    bundle = QueryBundle(QUERY)
    out = rerank.postprocess_nodes(nodes, bundle)

    start, end = rerank_events
    assert isinstance(start, ReRankStartEvent) and isinstance(end, ReRankEndEvent)
    assert start.query == bundle and start.top_n == 3 and start.model_name == reranker.model_id
    assert ids(start.nodes) == ids(nodes)
    assert end.nodes == out

    (pair,) = debug.get_event_pairs(CBEventType.RERANKING)
    assert pair[0].payload == {
        EventPayload.NODES: nodes,
        EventPayload.MODEL_NAME: reranker.model_id,
        EventPayload.QUERY_STR: QUERY,
        EventPayload.TOP_K: 3,
    }
    assert pair[1].payload == {EventPayload.NODES: out}


# -- serialisation -----------------------------------------------------------------------------


def test_serialisation_writes_the_model_as_a_string_and_round_trips(
    v2_artifact: Path, reranker: MxbaiReranker, nodes: list[NodeWithScore]
) -> None:
    rerank = MxbaiRerank(model=reranker, top_n=2, score_threshold=-100.0, metadata_mode=MetadataMode.NONE,
                         keep_retrieval_score=True)
    rerank.postprocess_nodes(nodes, query_str=QUERY)
    as_dict = rerank.to_dict()
    assert as_dict == {
        "model": str(v2_artifact),
        "top_n": 2,
        "score_threshold": -100.0,
        "instruction": None,
        "normalize": False,
        "batch_size": None,
        "metadata_mode": MetadataMode.NONE,
        "keep_retrieval_score": True,
        "reranker_kwargs": {},
        "class_name": "MxbaiRerank",
    }
    assert json.loads(rerank.to_json()) == {**as_dict, "metadata_mode": MetadataMode.NONE.value}
    assert rerank.model_dump()["model"] == str(v2_artifact)
    assert MxbaiRerank(model=v2_artifact).to_dict()["model"] == str(v2_artifact)
    assert MxbaiRerank.from_dict(as_dict).to_dict() == as_dict
    assert MxbaiRerank.from_json(rerank.to_json()).to_dict() == as_dict
    clone = pickle.loads(pickle.dumps(rerank))
    assert clone.to_dict() == as_dict and clone._shared.loaded(clone.model) is None
    assert ids(clone.postprocess_nodes(nodes, query_str=QUERY)) == [
        i for i, _ in expected(reranker, nodes, MetadataMode.NONE)[:2]
    ]


# -- async -------------------------------------------------------------------------------------


def test_apostprocess_keeps_the_event_loop_responsive(reranker: MxbaiReranker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another task runs on the loop while the scores are computed: shown by a handshake, not by timing.

    Scoring waits until a task on the event loop has run. A blocking implementation scores on the
    loop's own thread, so that task cannot run and the wait fails; no millisecond ticks to flake on a
    loaded machine.
    """
    many = [NodeWithScore(node=TextNode(text=f"{TEXTS[i % len(TEXTS)]} Variant {i}.", id_=str(i))) for i in range(40)]
    rerank = MxbaiRerank(model=reranker, top_n=5)
    scoring, loop_ran = threading.Event(), threading.Event()
    real_raw_scores = reranker.scorer.raw_scores

    def raw_scores_after_the_loop_ran(*args: Any, **kwargs: Any) -> Any:
        scoring.set()
        assert loop_ran.wait(timeout=20), "the event loop did not run while scoring: apostprocess blocks it"
        return real_raw_scores(*args, **kwargs)

    monkeypatch.setattr(reranker.scorer, "raw_scores", raw_scores_after_the_loop_ran)

    async def main() -> list[NodeWithScore]:
        async def other_task() -> None:
            while not scoring.is_set():
                await asyncio.sleep(0.001)
            loop_ran.set()

        task = asyncio.create_task(other_task())
        out = await rerank.apostprocess_nodes(many, query_str=QUERY)
        await task
        return out

    out = asyncio.run(main())
    assert scoring.is_set() and loop_ran.is_set()
    assert ids(out) == [i for i, _ in expected(reranker, many)[:5]]


def test_many_concurrent_apostprocess_calls(reranker: MxbaiReranker, rerank_events: list[BaseEvent]) -> None:
    rerank = MxbaiRerank(model=reranker, top_n=4)
    batches = [make_nodes()[i % 4 :] for i in range(24)]

    async def main() -> list[list[NodeWithScore]]:
        return list(await asyncio.gather(*(rerank.apostprocess_nodes(b, query_str=QUERY) for b in batches)))

    results = asyncio.run(main())
    for b, out in zip(batches, results, strict=True):
        assert [(n.node.node_id, n.score) for n in out] == expected(reranker, b)[:4]
    assert sum(isinstance(e, ReRankEndEvent) for e in rerank_events) == len(batches)


# -- pipelines ---------------------------------------------------------------------------------


def test_query_engine_query_and_aquery(
    reranker: MxbaiReranker, nodes: list[NodeWithScore], rerank_events: list[BaseEvent]
) -> None:
    index = VectorStoreIndex([n.node for n in nodes], embed_model=MockEmbedding(embed_dim=8))
    retrieved = index.as_retriever(similarity_top_k=6).retrieve(QUERY)
    assert len(retrieved) == 6
    want = expected(reranker, retrieved)[:3]
    engine = index.as_query_engine(
        similarity_top_k=6, node_postprocessors=[MxbaiRerank(model=reranker, top_n=3)], llm=MockLLM()
    )
    rerank_events.clear()
    for response in (engine.query(QUERY), asyncio.run(engine.aquery(QUERY))):
        assert [(n.node.node_id, n.score) for n in response.source_nodes] == want
        assert all(type(n.score) is float for n in response.source_nodes)
    assert [type(e) for e in rerank_events] == [ReRankStartEvent, ReRankEndEvent] * 2
    assert all(e.model_name == reranker.model_id for e in rerank_events if isinstance(e, ReRankStartEvent))
