"""The HTTP server: endpoints against MxbaiReranker and the references, cross-request batching, limits, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is not installed")
pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")
pytest.importorskip("prometheus_client", reason="the `serve` extra is not installed")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import HeldReranker, LiveServer, free_port  # noqa: E402

from mxbai_integrations import MxbaiReranker  # noqa: E402
from mxbai_integrations.serve import BatchOptions, ServeLimits, ServerOptions, create_app  # noqa: E402

QUERY = "Which city is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "",
    "The Eiffel Tower was completed in 1889. " * 12,
    "Bananas are yellow.",
    "La tour Eiffel se trouve à Paris. 埃菲尔铁塔位于巴黎。",
    "France",
]
# Padding tolerance of DESIGN.md: a row's score may move this much when batched with longer rows.
PADDED_ATOL = 1e-3


@pytest.fixture(scope="module")
def v1(v1_artifact) -> MxbaiReranker:
    return MxbaiReranker(v1_artifact)


@pytest.fixture(scope="module")
def v2(v2_artifact) -> MxbaiReranker:
    return MxbaiReranker(v2_artifact)


@pytest.fixture(scope="module")
def v1_client(v1):
    with TestClient(create_app(v1)) as client:
        yield client


@pytest.fixture(scope="module")
def v2_client(v2):
    with TestClient(create_app(v2)) as client:
        yield client


def _ranked(results: list[dict]) -> list[tuple[int, float]]:
    return [(r["index"], r["relevance_score"]) for r in results]


# -- endpoints agree with MxbaiReranker and the reference -------------------------------------------
@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_cohere_endpoints_rank_like_mxbai_reranker_and_cross_encoder(v1, v1_client, v1_reference, path):
    documents = [d if i % 2 else {"text": d} for i, d in enumerate(DOCS)]  # strings and {"text": ...} mixed
    body = v1_client.post(path, json={"query": QUERY, "documents": documents, "top_n": 4, "return_documents": True,
                                      "model": "anything"})
    assert body.status_code == 200, body.text
    data = body.json()
    expected = v1.rank(QUERY, DOCS, top_k=4)
    assert _ranked(data["results"]) == [(r.index, r.score) for r in expected]  # alone in its batch: identical
    assert [r["document"]["text"] for r in data["results"]] == [r.document for r in expected]
    assert data["meta"]["api_version"]["version"] == path[2]
    assert data["usage"]["total_tokens"] == sum(len(r) for r in v1.encode(QUERY, DOCS))
    assert isinstance(data["id"], str) and data["id"]
    reference = v1_reference.predict([(QUERY, d) for d in DOCS], batch_size=1, show_progress_bar=False)
    np.testing.assert_allclose([s for _, s in _ranked(data["results"])],
                               [float(reference[i]) for i, _ in _ranked(data["results"])], atol=1e-4, rtol=0)
    assert [i for i, _ in _ranked(data["results"])] == [int(i) for i in np.lexsort((np.arange(len(DOCS)),
                                                                                     -reference))[:4]]
    # Without return_documents the field is absent, as in Cohere's responses.
    plain = v1_client.post(path, json={"query": QUERY, "documents": DOCS}).json()
    assert all("document" not in r for r in plain["results"]) and len(plain["results"]) == len(DOCS)


@pytest.mark.parametrize("instruction", [None, "Find the passage that answers the geography question."])
@pytest.mark.parametrize("normalize", [False, True])
def test_v2_instruction_and_normalize_fields(v2, v2_client, v2_reference, instruction, normalize):
    data = v2_client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS, "instruction": instruction,
                                              "normalize": normalize}).json()
    expected = v2.rank(QUERY, DOCS, instruction=instruction, normalize=normalize)
    assert _ranked(data["results"]) == [(r.index, r.score) for r in expected]
    if instruction is None and not normalize:
        reference = v2_reference.rank(QUERY, DOCS, top_k=len(DOCS), batch_size=len(DOCS))
        assert [r["index"] for r in data["results"]] == [int(r.index) for r in reference]
        np.testing.assert_allclose([r["relevance_score"] for r in data["results"]],
                                   [float(r.score) for r in reference], atol=PADDED_ATOL, rtol=0)


def test_tei_rerank_endpoint(v1, v2, v1_client, v2_client):
    for client, reranker in ((v1_client, v1), (v2_client, v2)):
        body = {"query": QUERY, "texts": DOCS, "return_text": True, "truncate": True}
        default = client.post("/rerank", json=body).json()
        raw = client.post("/rerank", json={**body, "raw_scores": True, "return_text": False}).json()
        # TEI: sigmoid scores by default (v1's own score; v2's normalized one), raw logits on request.
        expected = reranker.score(QUERY, DOCS, normalize=reranker.family == "v2")
        assert [r["index"] for r in default] == sorted(range(len(DOCS)), key=lambda i: (-expected[i], i))
        assert [r["score"] for r in default] == [expected[r["index"]] for r in default]
        assert [r["text"] for r in default] == [DOCS[r["index"]] for r in default]
        assert all("text" not in r for r in raw)
        if reranker.family == "v1":
            logits = np.log(np.asarray(expected) / (1 - np.asarray(expected)))  # invert the sigmoid by hand
            np.testing.assert_allclose([r["score"] for r in sorted(raw, key=lambda r: r["index"])], logits,
                                       atol=1e-6, rtol=1e-6)
        else:
            assert {r["index"]: r["score"] for r in raw} == dict(enumerate(reranker.score(QUERY, DOCS)))


def test_empty_documents_and_top_n_past_the_end(v1_client):
    assert v1_client.post("/v2/rerank", json={"query": QUERY, "documents": []}).json()["results"] == []
    assert len(v1_client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS[:2], "top_n": 10}
                              ).json()["results"]) == 2


def test_health_info_and_openapi(v1, v1_client):
    assert v1_client.get("/health").json() == {"status": "ok"}
    info = v1_client.get("/info").json()
    assert info["family"] == "v1" and info["dtype"] == "fp32" and info["providers"] == v1.providers
    assert info["max_length"] == v1.max_length and info["model_id"] == v1.model_id
    paths = v1_client.get("/openapi.json").json()["paths"]
    assert {"/v1/rerank", "/v2/rerank", "/rerank", "/health", "/info"} <= set(paths)


def test_metrics_count_requests_documents_tokens_batches_and_errors(v1, v1_artifact):
    from prometheus_client.parser import text_string_to_metric_families

    with TestClient(create_app(MxbaiReranker(v1_artifact))) as client:
        for n in (3, 5):
            assert client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS[:n]}).status_code == 200
        assert client.post("/v1/rerank", json={"query": ""}).status_code == 422
        text = client.get("/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("mxbai_rerank_requests_total", (("endpoint", "/v1/rerank"), ("status", "200")))] == 2
    assert samples[("mxbai_rerank_requests_total", (("endpoint", "/v1/rerank"), ("status", "422")))] == 1
    assert samples[("mxbai_rerank_documents_total", ())] == 8
    tokens = sum(len(r) for r in v1.encode(QUERY, DOCS[:3])) + sum(len(r) for r in v1.encode(QUERY, DOCS[:5]))
    assert samples[("mxbai_rerank_tokens_total", ())] == tokens
    assert samples[("mxbai_rerank_request_seconds_count", (("endpoint", "/v1/rerank"),))] == 3
    assert samples[("mxbai_rerank_batch_documents_sum", ())] == 8
    assert samples[("mxbai_rerank_batch_requests_count", ())] == 2
    assert samples[("mxbai_rerank_errors_total", (("kind", "validation"),))] == 1
    assert samples[("mxbai_rerank_errors_total", (("kind", "queue_full"),))] == 0


# -- bad input: JSON errors naming the field, never a 500, and the server keeps answering ----------------
BAD_REQUESTS = [
    ("/v1/rerank", b'{"query": "q", "documents": [', 422, "body"),
    ("/v1/rerank", {"documents": ["a"]}, 422, "query"),
    ("/v1/rerank", {"query": "   ", "documents": ["a"]}, 422, "query"),
    ("/v1/rerank", {"query": 7, "documents": ["a"]}, 422, "query"),
    ("/v2/rerank", {"query": "q", "documents": "not a list"}, 422, "documents"),
    ("/v2/rerank", {"query": "q", "documents": ["a", 3]}, 422, "documents[1]"),
    ("/v2/rerank", {"query": "q", "documents": [{"title": "no text"}]}, 422, "documents[0]"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
    ("/v2/rerank", {"query": "q", "documents": ["a"], "instruction": "v2 only"}, 422, "instruction"),
    ("/v2/rerank", [1, 2], 422, "body"),
    ("/rerank", {"query": "q", "texts": [None]}, 422, "texts[0]"),
    ("/rerank", {"query": "q", "texts": ["a"], "raw_scores": "maybe"}, 422, "raw_scores"),
    ("/v2/rerank", {"query": "q", "documents": ["a"] * 6}, 413, "documents"),
    ("/v2/rerank", {"query": "q", "documents": ["a", "x" * 201]}, 413, "documents[1]"),
    ("/rerank", {"query": "q", "texts": ["x" * 201]}, 413, "texts[0]"),
    ("/v2/rerank", {"query": "q", "documents": ["y" * 150] * 5 + ["z" * 2000]}, 413, "body"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD_REQUESTS,
                         ids=[f"{s}-{f}-{i}" for i, (_, _, s, f) in enumerate(BAD_REQUESTS)])
def test_bad_request_is_a_json_error_naming_the_field_and_the_server_still_answers(v1, path, body, status, field):
    app = create_app(v1, limits=ServeLimits(max_documents=5, max_document_chars=200, max_body_bytes=1500))
    with TestClient(app, raise_server_exceptions=False) as client:
        if isinstance(body, bytes):
            response = client.post(path, content=body, headers={"content-type": "application/json"})
        else:
            response = client.post(path, json=body)
        assert response.status_code == status, response.text
        error = response.json()
        assert error["field"] == field
        assert error["message"] == error["error"] and error["message"]
        assert error["error_type"] == ("validation" if status == 422 else "too_large")
        short = [d for d in DOCS if len(d) <= 200][:5]
        good = client.post("/v1/rerank", json={"query": QUERY, "documents": short})
        assert good.status_code == 200
        assert _ranked(good.json()["results"]) == [(r.index, r.score) for r in v1.rank(QUERY, short)]


def test_a_failed_model_pass_fails_its_requests_not_the_worker(v1_artifact, v1, monkeypatch):
    reranker = MxbaiReranker(v1_artifact)
    run_batch = reranker.scorer.run_batch
    failed: list[bool] = []

    def fails_once(ids, mask):
        if not failed:
            failed.append(True)
            raise RuntimeError("simulated onnxruntime failure")
        return run_batch(ids, mask)

    monkeypatch.setattr(reranker.scorer, "run_batch", fails_once)  # the scorer's public seam
    with TestClient(create_app(reranker), raise_server_exceptions=False) as client:
        broken = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
        assert broken.status_code == 500 and broken.json()["error_type"] == "internal"
        after = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
        assert after.status_code == 200
        assert _ranked(after.json()["results"]) == [(r.index, r.score) for r in v1.rank(QUERY, DOCS)]
        assert 'mxbai_rerank_errors_total{kind="internal"} 1.0' in client.get("/metrics").text


def test_limits_are_checked_when_configured():
    with pytest.raises(ValueError, match="max_documents"):
        ServeLimits(max_documents=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        BatchOptions(max_wait_ms=-1)
    with pytest.raises(ValueError, match="max_batch_requests"):
        BatchOptions(max_batch_requests=0)
    with pytest.raises(ValueError, match="max_query_chars"):
        ServeLimits(max_query_chars=True)
    with pytest.raises(ValueError, match="body_timeout_s"):
        ServeLimits(body_timeout_s=float("inf"))
    with pytest.raises(ValueError, match="header_timeout_s"):
        ServerOptions(header_timeout_s=0)


# -- over a real socket: batching, the queue bound, loading, shutdown ----------------------------------
async def _post_all(url: str, bodies: list[dict], path: str = "/v2/rerank") -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return await asyncio.gather(*(client.post(path, json=b) for b in bodies))


def _mixed_requests(n: int) -> list[dict]:
    """Different queries and document counts, so rows of different requests share padded batches."""
    queries = [QUERY, "What is yellow?", "Tell me about the Eiffel Tower", "Germany", "capital cities of Europe"]
    return [{"query": queries[i % len(queries)], "documents": DOCS[i % 3:] + DOCS[: i % 4], "top_n": None}
            for i in range(n)]


@pytest.mark.parametrize("family", ["v1", "v2"])
def test_cross_request_batching_gives_each_caller_its_own_scores(family, v1, v2):
    reranker = {"v1": v1, "v2": v2}[family]
    bodies = _mixed_requests(12)
    app = create_app(reranker, batching=BatchOptions(max_wait_ms=200, max_batch_requests=64))
    with LiveServer(app) as server:
        responses = asyncio.run(_post_all(server.url, bodies))
        metrics = httpx.get(f"{server.url}/metrics").text
    for body, response in zip(bodies, responses, strict=True):
        assert response.status_code == 200, response.text
        got = _ranked(response.json()["results"])
        alone = reranker.rank(body["query"], body["documents"])
        assert [i for i, _ in got] == [r.index for r in alone]
        np.testing.assert_allclose([s for _, s in got], [r.score for r in alone], atol=PADDED_ATOL, rtol=0)
    # The requests really were gathered: fewer model passes than requests.
    passes = next(float(line.split()[-1]) for line in metrics.splitlines()
                  if line.startswith("mxbai_rerank_batch_requests_count"))
    assert 1 <= passes < len(bodies)


def test_without_batching_each_request_runs_alone(v1):
    bodies = _mixed_requests(6)
    with LiveServer(create_app(v1, batching=BatchOptions(max_batch_requests=1))) as server:
        responses = asyncio.run(_post_all(server.url, bodies))
        metrics = httpx.get(f"{server.url}/metrics").text
    for body, response in zip(bodies, responses, strict=True):
        assert _ranked(response.json()["results"]) == [(r.index, r.score) for r in v1.rank(body["query"],
                                                                                           body["documents"])]
    assert "mxbai_rerank_batch_requests_count 6.0" in metrics
    assert "mxbai_rerank_batch_requests_sum 6.0" in metrics


def test_batcher_gathers_queued_requests_within_its_caps(v1_artifact, v1):
    """While the model is busy, requests queue; the next passes take them up to the request and document caps."""
    from mxbai_integrations.serve.batcher import CrossRequestBatcher, ScoreJob

    held = HeldReranker(v1_artifact)
    queries = [f"{QUERY} {i}" for i in range(8)]
    jobs = [ScoreJob(rows=held.encode(q, DOCS[:4])) for q in queries]  # 4 documents each
    passes: list[tuple[int, int]] = []

    async def scenario(options: BatchOptions) -> list[list[float]]:
        batcher = CrossRequestBatcher(held, options, on_batch=lambda st: passes.append((st.requests, st.documents)))
        await batcher.start()
        held.hold()
        first = asyncio.ensure_future(batcher.submit(jobs[0]))
        await asyncio.to_thread(held.entered.wait, 30)
        rest = [asyncio.ensure_future(batcher.submit(job)) for job in jobs[1:]]
        await asyncio.sleep(0.05)
        assert batcher.queue_depth == len(jobs) - 1
        held.release()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return results

    cases = [  # (options, (requests, documents) per model pass); the first pass is the held request alone
        (BatchOptions(max_wait_ms=0, max_batch_requests=3), [(1, 4), (3, 12), (3, 12), (1, 4)]),
        (BatchOptions(max_wait_ms=0, max_batch_documents=10), [(1, 4), (2, 8), (2, 8), (2, 8), (1, 4)]),
    ]
    for options, expected in cases:
        passes.clear()
        results = asyncio.run(scenario(options))
        assert passes == expected
        for query, scores in zip(queries, results, strict=True):
            alone = v1.score(query, DOCS[:4])
            np.testing.assert_allclose(scores, alone, atol=1e-5, rtol=0)  # v1: padding moves scores ~1e-6


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_full_queue_is_503_the_loop_stays_free_and_the_server_recovers(v1_artifact, v1):
    held = HeldReranker(v1_artifact)
    app = create_app(held, limits=ServeLimits(max_queue=1), batching=BatchOptions(max_batch_requests=1))
    body = {"query": QUERY, "documents": DOCS}
    with LiveServer(app) as server:

        async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response, float]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                held.hold()
                first = asyncio.create_task(client.post("/v1/rerank", json=body))
                await asyncio.to_thread(held.entered.wait, 30)       # the model is busy with the first
                second = asyncio.create_task(client.post("/v1/rerank", json=body))
                await asyncio.to_thread(_wait_for, lambda: app.state.mxbai.engine.queue_depth == 1)
                third = await client.post("/v1/rerank", json=body)   # queue full
                started = time.perf_counter()
                assert (await client.get("/health")).status_code == 200  # model work is off the event loop
                health_s = time.perf_counter() - started
                held.release()
                return await first, await second, third, health_s

        first, second, third, health_s = asyncio.run(scenario())
        assert third.status_code == 503 and third.json()["error_type"] == "queue_full"
        assert int(third.headers["retry-after"]) >= 1
        assert health_s < 5
        expected = [(r.index, r.score) for r in v1.rank(QUERY, DOCS)]
        for response in (first, second):
            assert response.status_code == 200 and _ranked(response.json()["results"]) == expected
        after = httpx.post(f"{server.url}/v1/rerank", json=body, timeout=60)
        assert after.status_code == 200 and _ranked(after.json()["results"]) == expected
        assert 'mxbai_rerank_errors_total{kind="queue_full"} 1.0' in httpx.get(f"{server.url}/metrics").text


def test_body_over_the_limit_is_413_over_a_socket(v1):
    big = {"query": QUERY, "documents": ["word " * 200] * 50}
    with LiveServer(create_app(v1, limits=ServeLimits(max_body_bytes=10_000))) as server:
        response = httpx.post(f"{server.url}/v2/rerank", json=big, timeout=30)
        assert response.status_code == 413 and response.json()["field"] == "body"
        ok = httpx.post(f"{server.url}/v2/rerank", json={"query": QUERY, "documents": DOCS}, timeout=30)
        assert _ranked(ok.json()["results"]) == [(r.index, r.score) for r in v1.rank(QUERY, DOCS)]


def test_health_is_503_until_the_model_is_loaded(v1_artifact):
    import threading

    may_load = threading.Event()

    def load() -> MxbaiReranker:
        may_load.wait(30)
        return MxbaiReranker(v1_artifact)

    with TestClient(create_app(load)) as client:
        loading = client.get("/health")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        early = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
        assert early.status_code == 503 and early.json()["error_type"] == "not_ready"
        assert int(loading.headers["retry-after"]) >= 1 and int(early.headers["retry-after"]) >= 1
        may_load.set()
        _wait_for(lambda: client.get("/health").status_code == 200)
        assert client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 200

    with TestClient(create_app(v1_artifact.parent / "does-not-exist")) as client:
        _wait_for(lambda: client.get("/health").json()["status"] != "loading")
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "failed" and health.json()["detail"]
        assert client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 503


def test_graceful_shutdown_lets_in_flight_requests_finish(v1_artifact, v1):
    held = HeldReranker(v1_artifact)
    server = LiveServer(create_app(held)).start()
    held.hold()
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        result["response"] = httpx.post(f"{server.url}/v1/rerank", json={"query": QUERY, "documents": DOCS},
                                        timeout=60)

    import threading

    caller = threading.Thread(target=call)
    caller.start()
    assert held.entered.wait(30)
    server.server.should_exit = True  # what SIGTERM does
    time.sleep(0.3)
    assert server.thread.is_alive()   # waiting for the request in flight
    held.release()
    caller.join(60)
    server.thread.join(60)
    assert not server.thread.is_alive()
    response = result["response"]
    assert response.status_code == 200
    assert _ranked(response.json()["results"]) == [(r.index, r.score) for r in v1.rank(QUERY, DOCS)]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=5)


# -- the CLI and the optional-extra import ------------------------------------------------------------
def test_cli_serve_starts_answers_and_stops_on_sigterm(v1_artifact, v1):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mxbai_integrations.cli", "serve", str(v1_artifact),
                             "--port", str(port), "--max-wait-ms", "2", "--max-documents", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(healthy, timeout=60)
        response = httpx.post(f"{url}/v1/rerank", json={"query": QUERY, "documents": DOCS}, timeout=30)
        assert _ranked(response.json()["results"]) == [(r.index, r.score) for r in v1.rank(QUERY, DOCS)]
        assert httpx.get(f"{url}/info").json()["max_documents"] == 50
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status says why it ended.
        assert proc.wait(60) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serve_missing_model_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mxbai_integrations.cli", "serve", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mxbai-onnx: error:") and proc.stderr.count("\n") == 1


@pytest.mark.parametrize(("hidden", "statement", "extra"), [
    ("fastapi", "from mxbai_integrations.serve import create_app", "mxbai-integrations[serve]"),
    ("prometheus_client", "import mxbai_integrations.serve.app", "mxbai-integrations[serve]"),
    ("ray", "import mxbai_integrations.serve.ray_serve", "mxbai-integrations[ray"),
    ("ray", "import mxbai_integrations.serve.ray_data", "mxbai-integrations[ray"),
])
def test_import_without_the_extra_names_it(hidden, statement, extra):
    code = (f"import sys; sys.modules[{hidden!r}] = None\n"
            f"try:\n    {statement}\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}).stdout
    assert f'pip install "{extra}' in out


def test_the_limits_and_batching_records_import_without_the_extra():
    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from mxbai_integrations.serve import BatchOptions, ServeLimits, ServerOptions\n"
            "print(ServeLimits().max_query_chars, BatchOptions().max_batch_requests, ServerOptions().header_timeout_s)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["100000", "64", "10.0"], out.stderr


def test_serving_never_imports_torch():
    code = ("import sys, mxbai_integrations.serve, mxbai_integrations.serve.ray_serve, "
            "mxbai_integrations.serve.ray_data\n"
            "print(sorted(m for m in ('torch', 'transformers', 'optimum', 'onnx_export') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stderr
