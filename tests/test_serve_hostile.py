"""The server under hostile and careless input: one request never takes it down or poisons the others.

Each test here failed on the server before its fix: a query with no length limit, a ``rank_fields``
join with none, a million bad items validated one by one, one NaN row failing every request
batched with it, plain-text 500s for requests still queued at shutdown, a keep-alive connection
dropped after a 500, FastAPI's own error shapes for unreadable bodies, ``top_n: true`` taken as 1,
connections that never send a request head held forever, and a bug reported as a 422.
"""

from __future__ import annotations

import asyncio
import http.client
import shutil
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the `serve` extra is not installed")
pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")
pytest.importorskip("prometheus_client", reason="the `serve` extra is not installed")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import HeldReranker, LiveServer  # noqa: E402

from mxbai_integrations import MxbaiReranker  # noqa: E402
from mxbai_integrations.errors import ArgumentError, NonFiniteScoreError  # noqa: E402
from mxbai_integrations.options import RerankerOptions  # noqa: E402
from mxbai_integrations.serve import BatchOptions, ServeLimits, create_app  # noqa: E402

QUERY = "Which city is the capital of France?"
DOCS = ["Paris is the capital and largest city of France.", "Berlin is the capital of Germany.",
        "Bananas are yellow.", "The Eiffel Tower was completed in 1889.", "France", ""]
POISON_DOC = "quokka"  # its 'q' token gets a NaN embedding row in the poisoned artifact
ERROR_KEYS = {"message", "error", "error_type", "field"}


@pytest.fixture(scope="module")
def v1(v1_artifact) -> MxbaiReranker:
    return MxbaiReranker(v1_artifact)


@pytest.fixture(scope="module")
def v2(v2_artifact) -> MxbaiReranker:
    return MxbaiReranker(v2_artifact)


def _ranked(results: list[dict]) -> list[tuple[int, float]]:
    return [(r["index"], r["relevance_score"]) for r in results]


def _errors_total(client, kind: str) -> float:
    prefix = f'mxbai_rerank_errors_total{{kind="{kind}"}} '
    return next(float(line[len(prefix):]) for line in client.get("/metrics").text.splitlines()
                if line.startswith(prefix))


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _is_error(response, status: int, kind: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and body["message"] == body["error"] and body["message"]
    assert (body["error_type"], body["field"]) == (kind, field), body


# -- 1. work bounded by the limits, not by (field size) x (documents) -------------------------------------
def test_a_query_or_instruction_over_max_query_chars_is_413_naming_it(v1, v2):
    limits = ServeLimits(max_query_chars=50)
    with TestClient(create_app(v1, limits=limits)) as client:
        _is_error(client.post("/v1/rerank", json={"query": "q" * 51, "documents": DOCS}), 413, "too_large", "query")
        _is_error(client.post("/rerank", json={"query": "q" * 51, "texts": DOCS}), 413, "too_large", "query")
        at_limit = client.post("/v1/rerank", json={"query": "capital " * 6 + "ab", "documents": DOCS})
        assert _ranked(at_limit.json()["results"]) == [(r.index, r.score) for r in v1.rank("capital " * 6 + "ab", DOCS)]
        assert client.get("/info").json()["max_query_chars"] == 50
    with TestClient(create_app(v2, limits=limits)) as client:
        long_instruction = client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS, "instruction": "i" * 51})
        _is_error(long_instruction, 413, "too_large", "instruction")


def test_rank_fields_text_is_bounded_by_max_document_chars_and_fields_are_listed_once(v1):
    nested = {"rows": [{"cell": "x" * 40}] * 8}  # a nested object: its text alone is over 300 characters
    with TestClient(create_app(v1, limits=ServeLimits(max_document_chars=300))) as client:
        documents = [{"text": "Paris", "meta": {"city": "Paris"}}, {"text": "Berlin", "meta": nested}]
        big = client.post("/v2/rerank", json={"query": QUERY, "documents": documents, "rank_fields": ["text", "meta"]})
        _is_error(big, 413, "too_large", "documents[1]")
        twice = client.post("/v2/rerank", json={"query": QUERY, "documents": documents[:1],
                                                "rank_fields": ["text", "text"]})
        _is_error(twice, 422, "validation", "rank_fields")
        ok = client.post("/v2/rerank", json={"query": QUERY, "documents": documents[:1],
                                             "rank_fields": ["text", "meta"], "return_documents": True})
        joined = "text: Paris\nmeta: {'city': 'Paris'}"
        assert ok.json()["results"][0]["document"]["text"] == joined
        assert _ranked(ok.json()["results"]) == [(r.index, r.score) for r in v1.rank(QUERY, [joined])]


def test_a_body_of_many_bad_items_is_one_error_not_one_per_item(v1):
    with TestClient(create_app(v1, limits=ServeLimits(max_documents=100_000))) as client:
        response = client.post("/v2/rerank", json={"query": QUERY, "documents": [1] * 50_000})
        _is_error(response, 422, "validation", "documents[0]")
        assert "more" not in response.json()["message"]  # was "(and 99999 more)": every item validated
        assert client.post("/v2/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 200


# -- 2. a non-finite row fails only its own request -----------------------------------------------------
@pytest.fixture(scope="module")
def poisoned(v1_artifact, v1, tmp_path_factory) -> Path:
    """The v1 artifact with one token's embedding row set to NaN (re-hashed, so it loads as any artifact)."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from mxbai_integrations.artifact import file_record, read_manifest, write_manifest

    innocent = {t for q in _innocent_queries() for row in v1.encode(q, DOCS) for t in row}
    token = min(set(v1.encode(QUERY, [POISON_DOC])[0]) - innocent)
    out = tmp_path_factory.mktemp("poisoned") / "tiny-v1-nan"
    shutil.copytree(v1_artifact, out)
    model = onnx.load(str(out / "model.onnx"))
    table = next(t for t in model.graph.initializer if t.name.endswith("word_embeddings.weight"))
    values = numpy_helper.to_array(table).copy()
    values[token] = np.nan
    table.CopyFrom(numpy_helper.from_array(values, table.name))
    onnx.save(model, str(out / "model.onnx"))
    manifest = read_manifest(out)
    write_manifest(out, replace(manifest, files={**manifest.files, "model.onnx": file_record(out / "model.onnx")}))
    return out


def _innocent_queries() -> list[str]:
    return [QUERY, "What colour are bananas?", "Tell me about the Eiffel Tower", "Germany", "capital cities",
            "When was it built?", "largest city"]


def test_one_poisoned_request_fails_alone_and_seven_batched_with_it_get_their_scores(poisoned, v1):
    bodies = [{"query": q, "documents": DOCS} for q in _innocent_queries()]
    bodies.insert(3, {"query": QUERY, "documents": [DOCS[0], POISON_DOC, DOCS[1]]})
    app = create_app(MxbaiReranker(poisoned), batching=BatchOptions(max_wait_ms=5000, max_batch_requests=8))
    with LiveServer(app) as server:

        async def post_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                return await asyncio.gather(*(client.post("/v1/rerank", json=b) for b in bodies))

        responses = asyncio.run(post_all())
        metrics = httpx.get(f"{server.url}/metrics").text
    _is_error(responses[3], 500, "non_finite", "documents[1]")
    assert "documents[1]" in responses[3].json()["message"] and "documents[0]" not in responses[3].json()["message"]
    for body, response in zip(bodies, responses, strict=True):
        if body["documents"][1] == POISON_DOC:
            continue
        assert response.status_code == 200, response.text
        got = _ranked(response.json()["results"])
        alone = v1.rank(body["query"], body["documents"])  # the clean model: the row set to NaN is not used
        assert [i for i, _ in got] == [r.index for r in alone]
        np.testing.assert_allclose([s for _, s in got], [r.score for r in alone], atol=1e-5, rtol=0)
    assert "mxbai_rerank_batch_requests_count 1.0" in metrics  # all eight in one model pass
    assert "mxbai_rerank_batch_requests_sum 8.0" in metrics


def test_run_jobs_returns_each_jobs_own_outcome(poisoned, v1):
    from mxbai_integrations.serve.batcher import ScoreJob, run_jobs

    scorer = MxbaiReranker(poisoned).scorer
    jobs = [ScoreJob(rows=scorer.encode(QUERY, DOCS[:3])), ScoreJob(rows=scorer.encode(QUERY, [DOCS[0], POISON_DOC])),
            ScoreJob(rows=scorer.encode("Germany", DOCS[:2]), raw=True)]
    clean, poisoned_job, raw = run_jobs(scorer, jobs)
    assert isinstance(poisoned_job, NonFiniteScoreError) and poisoned_job.indices == [1]
    np.testing.assert_allclose(clean, v1.score(QUERY, DOCS[:3]), atol=1e-5, rtol=0)
    logits = np.log(np.asarray(v1.score("Germany", DOCS[:2])) / (1 - np.asarray(v1.score("Germany", DOCS[:2]))))
    np.testing.assert_allclose(raw, logits, atol=1e-5, rtol=1e-5)


# -- 3. shutdown and keep-alive ------------------------------------------------------------------------
def test_requests_still_waiting_at_the_graceful_timeout_get_a_json_503_with_retry_after(v1_artifact):
    held = HeldReranker(v1_artifact)
    app = create_app(held, batching=BatchOptions(max_batch_requests=1))
    server = LiveServer(app, graceful_timeout_s=1.0).start()
    responses: dict[int, httpx.Response] = {}

    def call(i: int) -> None:
        responses[i] = httpx.post(f"{server.url}/v1/rerank", json={"query": QUERY, "documents": DOCS}, timeout=60)

    held.hold()
    callers = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    callers[0].start()
    assert held.entered.wait(30)                              # the first is in the model
    callers[1].start()
    _wait_for(lambda: app.state.mxbai.engine.queue_depth == 1)  # the second is queued behind it
    server.server.should_exit = True                          # what SIGTERM does
    for caller in callers:
        caller.join(30)
    held.release()
    server.thread.join(60)
    assert not server.thread.is_alive()
    for response in responses.values():
        _is_error(response, 503, "not_ready", None)
        assert int(response.headers["retry-after"]) >= 1


def test_after_a_500_the_keep_alive_connection_stays_usable(v1_artifact, v1, monkeypatch):
    reranker = MxbaiReranker(v1_artifact)
    run_batch = reranker.scorer.run_batch
    calls: list[int] = []

    def fails_first(ids, mask):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated onnxruntime failure")
        return run_batch(ids, mask)

    monkeypatch.setattr(reranker.scorer, "run_batch", fails_first)
    with LiveServer(create_app(reranker)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.auto_open = 0  # no silent reconnect: the second request must use the same connection
        conn.connect()
        answers = []
        for _ in range(2):
            conn.request("POST", "/v1/rerank", body=httpx.Request("POST", "/", json={"query": QUERY, "documents": DOCS})
                         .content, headers={"content-type": "application/json"})
            response = conn.getresponse()
            answers.append((response.status, response.getheader("connection"), response.read()))
        conn.close()
    assert answers[0][0] == 500 and answers[0][1] != "close" and b'"error_type":"internal"' in answers[0][2]
    assert answers[1][0] == 200


# -- 4. malformed bodies, strict types, the schema, idle connections -----------------------------------------
MALFORMED = [
    ("latin-1", "/v1/rerank", '{"query": "caf\u00e9", "documents": ["a"]}'.encode("latin-1"), "body"),
    ("not UTF-8", "/v2/rerank", b'\xff\xfe{"query": "q", "documents": ["a"]}', "body"),
    ("deeply nested", "/v2/rerank", b'{"query": "q", "documents": [{"text": "a", "x": ' + b"[" * 5000 + b"]" * 5000
     + b"}]}", "body"),
    ("lone surrogate", "/v2/rerank", b'{"query": "\\ud800", "documents": ["a"]}', "body"),
    ("lone surrogate in a text", "/rerank", b'{"query": "q", "texts": ["a", "\\udc00b"]}', "body"),
    ("top_n true", "/v2/rerank", b'{"query": "q", "documents": ["a"], "top_n": true}', "top_n"),
    ("top_n string", "/v2/rerank", b'{"query": "q", "documents": ["a"], "top_n": "1"}', "top_n"),
    ("top_n float", "/v1/rerank", b'{"query": "q", "documents": ["a"], "top_n": 1.0}', "top_n"),
    ("bool as string", "/rerank", b'{"query": "q", "texts": ["a"], "raw_scores": "true"}', "raw_scores"),
    ("empty body", "/v1/rerank", b"", "body"),
    ("NaN literal", "/v1/rerank", b'{"query": "q", "documents": ["a"], "top_n": NaN}', "top_n"),
]


@pytest.mark.parametrize(("path", "raw", "field"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_body_is_the_documented_422_and_is_counted(v1, path, raw, field):
    with TestClient(create_app(v1), raise_server_exceptions=False) as client:
        response = client.post(path, content=raw, headers={"content-type": "application/json"})
        _is_error(response, 422, "validation", field)
        assert _errors_total(client, "validation") == 1
        assert client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 200


def test_unknown_paths_and_methods_are_json_errors_too(v1):
    with TestClient(create_app(v1)) as client:
        _is_error(client.get("/v3/rerank"), 404, "not_found", None)
        wrong = client.get("/v1/rerank")
        _is_error(wrong, 405, "method_not_allowed", None)
        assert "POST" in wrong.headers["allow"]
        assert _errors_total(client, "not_found") == 1


def test_openapi_states_what_the_server_enforces(v1):
    limits = ServeLimits(max_documents=7, max_document_chars=300, max_query_chars=40)
    with TestClient(create_app(v1, limits=limits)) as client:
        schema = client.get("/openapi.json").json()
        cohere, tei = (schema["components"]["schemas"][n] for n in ("RerankRequest", "TeiRerankRequest"))
        for model in (cohere, tei):
            query = model["properties"]["query"]
            assert (query["minLength"], query["maxLength"], query["pattern"]) == (1, 40, r"\S")
        documents = cohere["properties"]["documents"]
        assert documents["maxItems"] == 7 and {"type": "string", "maxLength": 300} in documents["items"]["anyOf"]
        text = schema["components"]["schemas"]["CohereDocument"]["properties"]["text"]
        assert {"type": "string", "maxLength": 300} in text["anyOf"]
        assert tei["properties"]["texts"]["maxItems"] == 7 and tei["properties"]["texts"]["items"]["maxLength"] == 300
        top_n = cohere["properties"]["top_n"]["anyOf"][0]
        assert (top_n["type"], top_n["exclusiveMinimum"]) == ("integer", 0)
        body = schema["paths"]["/v1/rerank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/RerankRequest"}
        assert schema["paths"]["/rerank"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/TeiRerankRequest"}
        # ... and the server answers exactly there: one past each limit is a 413, at it a 200.
        _is_error(client.post("/v2/rerank", json={"query": "q", "documents": ["a"] * 8}), 413, "too_large", "documents")
        assert client.post("/v2/rerank", json={"query": "q" * 40, "documents": ["a" * 300] * 7}).status_code == 200
        _is_error(client.post("/v2/rerank", json={"query": "q", "documents": [{"text": "a" * 301}]}), 413,
                  "too_large", "documents[0].text")


def _closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if the connection is still open after ``seconds``."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return None
    return data


def test_connections_that_stall_are_closed(v1):
    app = create_app(v1, limits=ServeLimits(body_timeout_s=0.5))
    with LiveServer(app, keep_alive_timeout_s=0.5, header_timeout_s=0.5) as server:
        def connect(payload: bytes) -> socket.socket:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(payload)
            return sock

        silent = connect(b"")
        half_head = connect(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\n")
        half_body = connect(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 100\r\n\r\n{\"query\"")
        idle = connect(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert _closed_within(silent, 20) == b""
            assert _closed_within(half_head, 20) == b""
            stalled = _closed_within(half_body, 20)
            assert stalled is not None and stalled.startswith(b"HTTP/1.1 408")
            assert b"connection: close" in stalled.lower() and b'"error_type":"timeout"' in stalled
            answered = _closed_within(idle, 20)
            assert answered is not None and answered.startswith(b"HTTP/1.1 200")
        finally:
            for sock in (silent, half_head, half_body, idle):
                sock.close()
        assert httpx.get(f"{server.url}/health").status_code == 200


# -- errors by type; one options record --------------------------------------------------------------------
def test_a_bug_while_encoding_is_a_500_and_a_bad_argument_a_422(v1_artifact, monkeypatch):
    reranker = MxbaiReranker(v1_artifact)

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant broke")

    with TestClient(create_app(reranker), raise_server_exceptions=False) as client:
        v2_only = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "instruction": "x"})
        _is_error(v2_only, 422, "validation", "instruction")
        monkeypatch.setattr(reranker.scorer.encoder, "pairs", broken)
        bug = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
        _is_error(bug, 500, "internal", None)
        assert "invariant" not in bug.json()["message"]  # the internals stay in the log
        assert _errors_total(client, "internal") == 1


def test_create_app_takes_reranker_options_as_a_record_or_a_dict(v1_artifact, v1):
    for options in (RerankerOptions(batch_size=2), {"batch_size": 2}):
        app = create_app(v1_artifact, reranker_options=options)
        with TestClient(app) as client:
            _wait_for(lambda: client.get("/health").json()["status"] != "loading")  # noqa: B023
            assert app.state.mxbai.reranker.batch_size == 2
            response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
            assert _ranked(response.json()["results"]) == [(r.index, r.score) for r in v1.rank(QUERY, DOCS)]
    with pytest.raises(ArgumentError, match="reranker_options: unknown option"):
        create_app(v1_artifact, reranker_options={"batchsize": 2})
    with pytest.raises(ArgumentError, match="reranker_options"):
        create_app(v1, reranker_options={"batch_size": 2})
