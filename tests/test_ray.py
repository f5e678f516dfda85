"""Ray, on a local two-CPU cluster: the Serve deployment over HTTP, and Ray Data re-scoring in any partitioning.

Starting Ray costs 10-20 s, so there are few tests here, sharing one cluster.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")
pytest.importorskip("ray.serve", reason="the `ray` extra (ray[serve]) is not installed")
pytest.importorskip("ray.data", reason="the `ray` extra (ray[data]) is not installed")
pytest.importorskip("fastapi", reason="the `serve` extra is not installed")

import httpx  # noqa: E402
from serve_helpers import free_port  # noqa: E402

from mxbai_integrations import MxbaiReranker  # noqa: E402

QUERIES = ["Which city is the capital of France?", "What colour are bananas?", "When was the Eiffel Tower built?"]
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower was completed in 1889. " * 6,
    "Bananas are yellow.",
    "",
    "La tour Eiffel se trouve à Paris.",
    "France",
]
PADDED_ATOL = 1e-3  # DESIGN.md: scores of padded rows within 1e-3 of the reference


HUB_REPO = "test-org/tiny-onnx"  # an artifact repo, served to the workers from a local HF cache


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hugging Face cache every Ray worker reads (offline): a repo id resolves there, on each node."""
    return tmp_path_factory.mktemp("ray-hf")


@pytest.fixture(scope="module")
def ray_cluster(request, hf_cache: Path):
    env = {"HF_HUB_CACHE": str(hf_cache / "hub"), "HF_HUB_OFFLINE": "1",
           "MXBAI_INTEGRATIONS_CACHE": str(hf_cache / "mxbai")}  # no first-use export may land in ~
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": env})
    request.addfinalizer(ray.shutdown)
    return ray


def publish(hf_cache: Path, artifact: Path) -> str:
    """Put ``artifact`` in the workers' HF cache as ``HUB_REPO`` (what `mxbai-onnx push` uploads) and return the id."""
    from test_hub import add_snapshot, artifact_files

    add_snapshot(hf_cache / "hub", HUB_REPO, artifact_files(artifact))
    return HUB_REPO


def test_serve_deployment_answers_http_with_mxbai_reranker_scores(ray_cluster, hf_cache, v2_artifact):
    """The deployment gets a hub id: each replica fetches the artifact itself (from its HF cache here)."""
    from ray import serve

    from mxbai_integrations.options import RerankerOptions
    from mxbai_integrations.serve import BatchOptions
    from mxbai_integrations.serve.ray_serve import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        app = build_app(publish(hf_cache, v2_artifact), ray_actor_options={"num_cpus": 0.5},
                        reranker_options=RerankerOptions(batch_size=4),
                        batching=BatchOptions(max_wait_ms=50, max_batch_requests=16))
        serve.run(app, name="mxbai", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
        bodies = [{"query": q, "documents": DOCS[i:] + DOCS[:i], "top_n": 5} for i, q in enumerate(QUERIES * 2)]

        async def post_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await asyncio.gather(*(client.post("/v2/rerank", json=b) for b in bodies))

        responses = asyncio.run(post_all())
        tei = httpx.post(f"{url}/rerank", json={"query": QUERIES[0], "texts": DOCS, "raw_scores": True}, timeout=60)
        bad = httpx.post(f"{url}/v2/rerank", json={"query": QUERIES[0], "documents": [1]}, timeout=60)
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    finally:
        serve.shutdown()
    reranker = MxbaiReranker(v2_artifact)
    for body, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        got = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
        alone = reranker.rank(body["query"], body["documents"], top_k=5)
        assert [i for i, _ in got] == [r.index for r in alone]
        np.testing.assert_allclose([s for _, s in got], [r.score for r in alone], atol=PADDED_ATOL, rtol=0)
    assert [r["index"] for r in tei.json()] == [r.index for r in reranker.rank(QUERIES[0], DOCS)]
    assert bad.status_code == 422 and bad.json()["field"] == "documents[0]"
    assert "mxbai_rerank_batch_requests_count" in metrics  # the same app, with @serve.batch as its engine


@pytest.mark.parametrize("blocks", [1, 3])
def test_ray_data_scores_every_row_once_with_the_reference_scores(ray_cluster, v1_artifact, v1_reference, blocks):
    from mxbai_integrations.serve.ray_data import rerank_dataset

    rows = [{"id": f"{qi}-{di}", "query": q, "document": d}
            for qi, q in enumerate(QUERIES) for di, d in enumerate(DOCS)]
    dataset = ray.data.from_items(rows).repartition(blocks)
    scored = rerank_dataset(dataset, v1_artifact, batch_size=5, num_cpus=0.5,
                            reranker_options={"batch_size": 3}).take_all()
    ids = [r["id"] for r in scored]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # every row, exactly once
    by_id = {r["id"]: r for r in scored}
    reference = v1_reference.predict([(r["query"], r["document"]) for r in rows], batch_size=1,
                                     show_progress_bar=False)
    got = [float(by_id[r["id"]]["score"]) for r in rows]
    np.testing.assert_allclose(got, [float(x) for x in reference], atol=PADDED_ATOL, rtol=0)
    for qi in range(len(QUERIES)):  # and the same order per query
        ours = [by_id[f"{qi}-{di}"]["score"] for di in range(len(DOCS))]
        ref = reference[qi * len(DOCS):(qi + 1) * len(DOCS)]
        assert list(np.argsort(-np.asarray(ours), kind="stable")) == list(np.argsort(-ref, kind="stable"))
    assert all(by_id[r["id"]]["query"] == r["query"] and by_id[r["id"]]["document"] == r["document"] for r in rows)


def test_ray_data_takes_a_hub_id_and_every_actor_fetches_the_artifact(ray_cluster, hf_cache, v1_artifact):
    from mxbai_integrations.serve.ray_data import rerank_dataset

    rows = [{"query": QUERIES[0], "document": d} for d in DOCS]
    scored = rerank_dataset(ray.data.from_items(rows).repartition(2), publish(hf_cache, v1_artifact),
                            batch_size=3, num_cpus=0.5, concurrency=2).take_all()
    by_document = {r["document"]: float(r["score"]) for r in scored}
    alone = MxbaiReranker(v1_artifact).score(QUERIES[0], DOCS)
    assert len(scored) == len(rows)
    np.testing.assert_allclose([by_document[d] for d in DOCS], alone, atol=PADDED_ATOL, rtol=0)


def test_ray_entry_points_check_reranker_options_before_anything_runs(ray_cluster, v1_artifact):
    from mxbai_integrations.errors import ArgumentError
    from mxbai_integrations.serve.ray_data import rerank_dataset
    from mxbai_integrations.serve.ray_serve import build_app

    with pytest.raises(ArgumentError, match="reranker_options: unknown option"):
        build_app(v1_artifact, reranker_options={"batchsize": 4})
    with pytest.raises(ArgumentError, match="batch_size"):
        rerank_dataset(ray.data.from_items([{"query": "q", "document": "d"}]), v1_artifact,
                       reranker_options={"batch_size": 0})
