"""MxbaiReranker through its public API: parity with the references, batching, threads, torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from mxbai_integrations import MxbaiReranker, RankResult

QUERY = "Which city is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "",
    "The Eiffel Tower was completed in 1889. " * 30,
    "Bananas are yellow.",
    "La tour Eiffel se trouve à Paris. 埃菲尔铁塔位于巴黎。",
    "France",
    "capital " * 300,
]


@pytest.fixture(scope="module")
def v1(v1_artifact) -> MxbaiReranker:
    return MxbaiReranker(v1_artifact)


@pytest.fixture(scope="module")
def v2(v2_artifact) -> MxbaiReranker:
    return MxbaiReranker(v2_artifact)


def _as_tuples(results) -> list[tuple[int, float, str | None]]:
    return [(r.index, r.score, r.document) for r in results]


def _assert_same_ranking(ours: list[RankResult], ref, atol: float) -> None:
    assert [r.index for r in ours] == [int(r.index) for r in ref]
    np.testing.assert_allclose([r.score for r in ours], [float(r.score) for r in ref], atol=atol, rtol=0)
    assert [r.document for r in ours] == [r.document for r in ref]


# -- parity ---------------------------------------------------------------------------------------
def test_v1_rank_matches_mxbai_rerank_v1(v1, v1_checkpoint):
    from mxbai_rerank import MxbaiRerankV1

    ref = MxbaiRerankV1(str(v1_checkpoint), device="cpu", torch_dtype=torch.float32)
    for top_k in (None, 3):
        ours = v1.rank(QUERY, DOCS, top_k=top_k)
        ref_results = ref.rank(QUERY, DOCS, top_k=top_k or len(DOCS), batch_size=len(DOCS))
        _assert_same_ranking(ours, ref_results, atol=1e-3)


def test_v1_rank_matches_cross_encoder(v1, v1_reference):
    ours = v1.rank(QUERY, DOCS)
    ref = v1_reference.rank(QUERY, DOCS, return_documents=True, show_progress_bar=False)
    assert [r.index for r in ours] == [r["corpus_id"] for r in ref]
    np.testing.assert_allclose([r.score for r in ours], [float(r["score"]) for r in ref], atol=1e-3, rtol=0)
    single = np.asarray(v1_reference.predict([(QUERY, d) for d in DOCS], batch_size=1, show_progress_bar=False))
    np.testing.assert_allclose(v1.score(QUERY, DOCS, batch_size=1), single, atol=1e-4, rtol=0)


@pytest.mark.parametrize("instruction", [None, "Retrieve passages that name a capital city."])
@pytest.mark.parametrize("normalize", [False, True])
def test_v2_rank_matches_mxbai_rerank_v2(v2, v2_reference, instruction, normalize):
    for top_k in (None, 2):
        ours = v2.rank(QUERY, DOCS, top_k=top_k, instruction=instruction, normalize=normalize)
        ref = v2_reference.rank(QUERY, DOCS, top_k=top_k or len(DOCS), batch_size=len(DOCS),
                                instruction=instruction, normalize=normalize)
        _assert_same_ranking(ours, ref, atol=1e-3)
    if normalize:
        assert all(0.0 < r.score < 1.0 for r in ours)


def test_v2_unpadded_scores_within_1e4(v2, v2_reference):
    ours = v2.score(QUERY, DOCS, batch_size=1)
    ref = [float(v2_reference.predict([QUERY], [d])[0]) for d in DOCS]
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_v2_shorter_max_length_matches_reference(v2_artifact, v2_checkpoint):
    from mxbai_rerank import MxbaiRerankV2

    ours = MxbaiReranker(v2_artifact, max_length=48)
    ref = MxbaiRerankV2(str(v2_checkpoint), device="cpu", torch_dtype=torch.float32, max_length=48)
    _assert_same_ranking(ours.rank(QUERY, DOCS), ref.rank(QUERY, DOCS, top_k=len(DOCS), batch_size=8), atol=1e-3)


def test_results_are_python_types_and_sorted(v2):
    results = v2.rank(QUERY, DOCS, return_documents=False)
    assert all(type(r.index) is int and type(r.score) is float and r.document is None for r in results)
    keys = [(-r.score, r.index) for r in results]
    assert keys == sorted(keys)
    scores = v2.score(QUERY, DOCS)
    assert all(type(s) is float for s in scores) and len(scores) == len(DOCS)
    assert [r.index for r in results] == sorted(range(len(DOCS)), key=lambda i: (-scores[i], i))


def test_ties_are_broken_by_index(v1):
    results = v1.rank(QUERY, ["same text", "other", "same text"])
    same = [r.index for r in results if r.index in (0, 2)]
    assert same == [0, 2]


# -- batching ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["v1", "v2"])
def test_score_does_not_depend_on_batch_mates(name, request):
    reranker: MxbaiReranker = request.getfixturevalue(name)
    alone = [reranker.score(QUERY, [d])[0] for d in DOCS]
    together = reranker.score(QUERY, DOCS)
    small_batches = reranker.score(QUERY, DOCS, batch_size=3)
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(small_batches, alone, atol=1e-5, rtol=0)


def test_token_budget_caps_batches(v2_artifact):
    reranker = MxbaiReranker(v2_artifact, max_batch_tokens=256)
    seen: list[tuple[int, int]] = []
    run = reranker.scorer.run_batch

    def spy(ids, mask):
        seen.append(ids.shape)
        return run(ids, mask)

    reranker.scorer.run_batch = spy  # observe the shapes the session receives
    reranker.score(QUERY, DOCS)
    assert all(rows * width <= 256 or rows == 1 for rows, width in seen)
    assert all(width % 8 == 0 for _, width in seen)
    assert sum(rows for rows, _ in seen) == len(DOCS)


def test_sixteen_threads_give_identical_scores(v2):
    expected = v2.score(QUERY, DOCS)

    def call(i: int) -> list[float]:
        docs = DOCS[i % len(DOCS):] + DOCS[: i % len(DOCS)]
        scores = v2.score(QUERY, docs)
        return scores[len(DOCS) - i % len(DOCS):] + scores[: len(DOCS) - i % len(DOCS)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(16 * 50)))
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


# -- torch-free run time -------------------------------------------------------------------------
def test_run_time_imports_no_torch(v2_artifact):
    code = textwrap.dedent(f"""
        import json, sys
        from mxbai_integrations import MxbaiReranker
        r = MxbaiReranker({str(v2_artifact)!r})
        r.rank("query", ["a document", "another"])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum"))
        print(json.dumps(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# -- model resolution -----------------------------------------------------------------------------------
def test_env_default_model(v1_artifact, monkeypatch):
    monkeypatch.setenv("MXBAI_RERANK_MODEL", str(v1_artifact))
    assert MxbaiReranker().family == "v1"


def test_hub_id_uses_cached_artifact(v1_artifact, tmp_path, monkeypatch):
    import shutil

    target = tmp_path / "cache" / "mixedbread-ai--mxbai-rerank-xsmall-v1" / "fp32"
    shutil.copytree(v1_artifact, target)
    monkeypatch.setenv("MXBAI_INTEGRATIONS_CACHE", str(tmp_path / "cache"))
    reranker = MxbaiReranker("mixedbread-ai/mxbai-rerank-xsmall-v1", providers=["CPUExecutionProvider"])
    assert reranker.path == target and reranker.family == "v1"


def test_local_checkpoint_is_exported_on_first_use(v1_checkpoint, v1, tmp_path):
    reranker = MxbaiReranker(v1_checkpoint, cache_dir=tmp_path)
    assert reranker.path.is_relative_to(tmp_path) and reranker.manifest.valid
    np.testing.assert_allclose(reranker.score(QUERY, DOCS), v1.score(QUERY, DOCS), atol=1e-6)
    again = MxbaiReranker(v1_checkpoint, cache_dir=tmp_path)
    assert again.path == reranker.path


def test_dtype_must_match_artifact(v1_artifact):
    with pytest.raises(ValueError, match="dtype: asked for 'int8'"):
        MxbaiReranker(v1_artifact, dtype="int8")
