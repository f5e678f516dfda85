"""mxbai_integrations.scorer: the one place scores are computed, so the one place they must not go wrong.

The scorer refuses NaN/inf scores (an fp16 overflow) naming the documents, dtype and provider
instead of ranking them; it feeds the graph by the input and output names the manifest lists,
checked against the graph at load; and it clamps a v1 max_length beyond the model's positions, as
the reference does. Expected scores come from the reference library (CrossEncoder), never from
the code under test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_edits import CPU, DOCS, QUERY, copy_artifact, edit_manifest

import mxbai_integrations
from mxbai_integrations import ArtifactError, MxbaiReranker, NonFiniteScoreError
from mxbai_integrations.artifact import MODEL_NAME, file_record


def v1_reference_scores(v1_reference: Any, query: str, docs: list[str]) -> np.ndarray:
    return np.asarray(v1_reference.predict([(query, d) for d in docs], batch_size=1, show_progress_bar=False))


# -- non-finite scores raise, naming the documents ------------------------------------------------------------------


def test_non_finite_scores_raise_naming_documents_dtype_and_provider(
    v1_artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reranker = MxbaiReranker(v1_artifact, providers=CPU)
    lengths = [len(r) for r in reranker.encode(QUERY, DOCS)]
    assert len(set(lengths)) == len(lengths), "documents must be told apart by their length"
    poisoned = {lengths[1]: np.nan, lengths[4]: np.inf}
    real_run = reranker.scorer.run_batch

    def overflowing_run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:  # what an fp16 overflow looks like
        out = real_run(ids, mask).copy()
        for row, n in enumerate(mask.sum(axis=1)):
            out[row] = poisoned.get(int(n), out[row])
        return out

    monkeypatch.setattr(reranker.scorer, "run_batch", overflowing_run)
    for call in (reranker.score, reranker.rank):
        with pytest.raises(NonFiniteScoreError, match=r"indices \[1, 4\].*dtype fp32, provider CPUExecutionProvider"):
            call(QUERY, DOCS)
    with pytest.raises(NonFiniteScoreError) as info:
        reranker.rank(QUERY, DOCS, batch_size=1)
    assert info.value.indices == [1, 4] and isinstance(info.value, RuntimeError)
    assert "NonFiniteScoreError" in mxbai_integrations.__all__
    poisoned.clear()
    assert len(reranker.rank(QUERY, DOCS)) == len(DOCS)


# -- graph input and output names come from the manifest ------------------------------------------------------------


def test_graph_names_come_from_the_manifest(v1_artifact: Path, tmp_path: Path, v1_reference: Any) -> None:
    import onnx

    art = copy_artifact(v1_artifact, tmp_path / "art")
    model = onnx.load(str(art / MODEL_NAME))
    renames = {"input_ids": "tokens", "attention_mask": "mask", "score": "relevance"}
    for value in [*model.graph.input, *model.graph.output]:
        value.name = renames.get(value.name, value.name)
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    onnx.save(model, str(art / MODEL_NAME))
    edit_manifest(art, lambda d: d.update(
        inputs=["tokens", "mask"], outputs=["relevance"],
        files={**d["files"], MODEL_NAME: dataclasses.asdict(file_record(art / MODEL_NAME))}))
    scores = MxbaiReranker(art, providers=CPU).score(QUERY, DOCS, batch_size=1)
    np.testing.assert_allclose(scores, v1_reference_scores(v1_reference, QUERY, DOCS), atol=1e-4, rtol=0)
    # A manifest that names inputs the graph does not have is refused at load, naming both.
    edit_manifest(art, lambda d: d.update(inputs=["input_ids", "attention_mask"]))
    with pytest.raises(ArtifactError, match=r"graph .* has inputs \['mask', 'tokens'\].*manifest lists inputs"):
        MxbaiReranker(art, providers=CPU)


# -- v1 max_length above the model's positions ----------------------------------------------------------------------


def test_v1_max_length_above_positions_is_clamped_with_a_warning(v1_artifact: Path, v1_reference: Any) -> None:
    with pytest.warns(UserWarning, match="max_length: 1024 is more than the 512 positions"):
        reranker = MxbaiReranker(v1_artifact, providers=CPU, max_length=1024)
    assert reranker.max_length == 512
    docs = ["Paris " * 900, "capital of France " * 400, "short"]
    assert max(len(r) for r in reranker.encode(QUERY, docs)) == 512
    want = v1_reference_scores(v1_reference, QUERY, docs)
    np.testing.assert_allclose(reranker.score(QUERY, docs, batch_size=1), want, atol=1e-4, rtol=0)


# -- many documents: tokenized chunk by chunk, one progress bar over the whole call -----------------------------
def test_many_documents_are_tokenized_per_chunk_with_one_bar_over_the_call(
        v1_artifact: Path, v1_reference: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory is bounded by the chunk, not the request: 100,000 documents once held every encoding at once."""
    from mxbai_integrations import scorer as scorer_module

    reranker = MxbaiReranker(v1_artifact, providers=CPU)
    docs = [f"{DOCS[i % len(DOCS)]} ({i})" for i in range(70)]
    expected = v1_reference_scores(v1_reference, QUERY, docs)

    monkeypatch.setattr(scorer_module, "ENCODE_CHUNK_DOCUMENTS", 16)
    seen: list[int] = []
    original = scorer_module.Scorer.encode_documents

    def spy(self, query, documents, **kwargs):
        seen.append(len(documents))
        return original(self, query, documents, **kwargs)

    monkeypatch.setattr(scorer_module.Scorer, "encode_documents", spy)
    bars: list[Any] = []
    real_tqdm = scorer_module.tqdm

    def recording_tqdm(*args, **kwargs):
        bar = real_tqdm(*args, **kwargs)
        bars.append(bar)
        return bar

    monkeypatch.setattr(scorer_module, "tqdm", recording_tqdm)
    got = reranker.score(QUERY, docs, show_progress=True)

    assert seen == [16, 16, 16, 16, 6], "each chunk is encoded on its own, none holds the whole request"
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)  # chunking changes no score
    assert len(bars) == 1 and bars[0].total == len(docs) and bars[0].n == len(docs)
