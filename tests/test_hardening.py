"""Issue 10, correctness hardening: no silently wrong score (races, NaN, failed exports, TensorRT shapes).

Each test names the issue item it covers. Expected scores come from the reference libraries
(CrossEncoder, mxbai_rerank), hand-computable cases or scipy, never from the code under test.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import pickle
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import mxbai_integrations
from mxbai_integrations import ArtifactError, MxbaiReranker, NonFiniteScoreError, ProviderError, ValidationRecord, cli
from mxbai_integrations import providers as prov
from mxbai_integrations import reranker as reranker_mod
from mxbai_integrations.artifact import MANIFEST_NAME, MODEL_NAME, file_record, read_manifest, write_manifest
from mxbai_integrations.resolve import _cache_key
from mxbai_integrations.scorer import Scorer

QUERY = "Which city is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower was completed in 1889. " * 5,
    "Bananas are yellow.",
    "La tour Eiffel se trouve à Paris.",
    "France",
]
CPU = ["CPUExecutionProvider"]


def copy_artifact(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_manifest(artifact: Path, edit: Any) -> None:
    path = artifact / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def v1_reference_scores(v1_reference: Any, query: str, docs: list[str]) -> np.ndarray:
    return np.asarray(v1_reference.predict([(query, d) for d in docs], batch_size=1, show_progress_bar=False))


def v2_reference_scores(v2_reference: Any, query: str, docs: list[str]) -> np.ndarray:
    return np.concatenate([v2_reference.predict([query], [d]).double().numpy() for d in docs])


# -- 1. SharedReranker: one atomic slot per model, copies with another model get their own --------------------


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


# -- 2. a cached artifact whose validation failed is not served -----------------------------------------------


def test_cached_artifact_that_failed_validation_is_not_served(v1_artifact: Path, tmp_path: Path) -> None:
    hub_id = "mixedbread-ai/mxbai-rerank-xsmall-v1"
    target = copy_artifact(v1_artifact, tmp_path / "cache" / _cache_key(hub_id, None) / "fp32")
    edit_manifest(target, lambda d: d["validation"].update(passed=False))
    with pytest.raises(ArtifactError, match=r"failed validation.*mxbai_onnx\.json.*FAILED against sentence-transf"):
        MxbaiReranker(hub_id, providers=CPU, cache_dir=tmp_path / "cache")
    # Given explicitly by path it is the caller's choice: it loads, with a warning that says why.
    with pytest.warns(UserWarning, match="not validated.*FAILED"):
        MxbaiReranker(target, providers=CPU)
    # A passed record in the same place is served.
    edit_manifest(target, lambda d: d["validation"].update(passed=True))
    assert MxbaiReranker(hub_id, providers=CPU, cache_dir=tmp_path / "cache").path == target


# -- 3. non-finite scores ---------------------------------------------------------------------------------------


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


def test_spearman_refuses_non_finite_scores_and_ranks_ties_like_scipy() -> None:
    from scipy.stats import spearmanr

    from onnx_export.validate import spearman

    with pytest.raises(ValueError, match="NaN or inf"):
        spearman([0.9, np.nan, 0.1], [0.9, 0.5, 0.1])
    with pytest.raises(ValueError, match="NaN or inf"):
        spearman([0.9, 0.5, 0.1], [np.inf, 0.5, 0.1])
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 4, 12).astype(float)  # many ties
        b = rng.normal(size=12)
        assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0 and spearman([2, 2], [5, 5]) == 1.0


def test_validation_fails_on_non_finite_scores(v1_artifact: Path, v1_checkpoint: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from onnx_export.validate import validate_artifact

    real_run = Scorer.run_batch

    def nan_first_row(self: Scorer, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = real_run(self, ids, mask).copy()
        out[0] = np.nan
        return out

    monkeypatch.setattr(Scorer, "run_batch", nan_first_row)
    record = validate_artifact(v1_artifact, read_manifest(v1_artifact), str(v1_checkpoint))
    assert record.passed is False and record.all_finite is False
    assert all(case.non_finite for case in record.cases)
    assert any("NaN/inf" in f for f in record.failures)
    assert "scores finite: NO" in record.summary()
    assert ValidationRecord.from_dict(json.loads(json.dumps(record.to_dict(), allow_nan=False))) is not None


# -- 4. typed validation record; verdict printed by what decided it; validated through the shipped path ---------


OLD_INT8_RECORD = {  # the dict form manifests were written in before the record was typed
    "reference": "mxbai-rerank 0.1.6 MxbaiRerankV2", "reference_dtype": "fp32", "max_length": 256,
    "cases": [{"case": "short", "pairs": 5, "token_ids_equal": True, "max_abs_diff_unpadded": 0.05,
               "max_abs_diff_padded": 0.06, "spearman": 0.8, "top1_agrees": True}],
    "pairs": 5, "token_ids_equal": True, "max_abs_diff_unpadded": 0.05, "max_abs_diff_padded": 0.06,
    "spearman_min": 0.8, "spearman_pooled": 0.97, "top1_agreement": 1.0,
    "tolerance": {"spearman_pooled": 0.95}, "passed": True,
}


def test_validation_record_reads_old_dicts_and_round_trips_through_the_manifest(
    v1_artifact: Path, tmp_path: Path
) -> None:
    record = ValidationRecord.from_dict(OLD_INT8_RECORD)
    assert record is not None and record.decided_by == "spearman_pooled"
    assert record.tolerance.min_spearman_pooled == 0.95 and record.tolerance.max_abs_diff_unpadded is None
    assert ValidationRecord.from_dict(record.to_dict()) == record
    assert ValidationRecord.from_dict({}) is None
    assert ValidationRecord.from_dict({"skipped": True, "passed": False}) == ValidationRecord.skipped_record()
    old_fp32 = {**OLD_INT8_RECORD, "tolerance": {"unpadded": 1e-4, "padded": 1e-3}, "max_abs_diff_unpadded": 2e-4}
    fp32 = ValidationRecord.from_dict(old_fp32)
    assert fp32 is not None and fp32.decided_by == "max_abs_diff" and fp32.tolerance.max_abs_diff_padded == 1e-3
    # through the manifest JSON
    art = copy_artifact(v1_artifact, tmp_path / "art")
    manifest = read_manifest(art)
    assert isinstance(manifest.validation, ValidationRecord) and manifest.valid
    write_manifest(art, manifest)
    assert read_manifest(art) == manifest
    edit_manifest(art, lambda d: d.update(validation=OLD_INT8_RECORD))
    assert read_manifest(art).validation == record


def test_info_and_validate_print_the_statistic_that_decided_the_verdict(
    v1_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art = copy_artifact(v1_artifact, tmp_path / "art")
    edit_manifest(art, lambda d: d.update(validation=OLD_INT8_RECORD))
    assert cli.main(["info", str(art)]) == 0
    out = capsys.readouterr().out
    verdict = next(line for line in out.splitlines() if "verdict by" in line)
    assert "pooled Spearman 0.9700 over 5 pairs (>= 0.95 required)" in verdict
    assert "Spearman min" not in verdict and "per-case Spearman min 0.8000" in out  # recorded, not judged
    # an fp32 record is judged by the score differences
    edit_manifest(art, lambda d: d["validation"].update(tolerance={"unpadded": 1e-4, "padded": 1e-3}))
    assert cli.main(["info", str(art)]) == 0
    verdict = next(line for line in capsys.readouterr().out.splitlines() if "verdict by" in line)
    assert "max abs diff 0.05 unpadded (<= 0.0001), 0.06 padded (<= 0.001)" in verdict


def test_export_error_names_the_pooled_spearman_for_reduced_precision(
    v1_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnx_export import ExportError, export_model, validate

    monkeypatch.setattr(validate, "MIN_SPEARMAN_REDUCED", 1.01)  # nothing can reach it
    with pytest.raises(ExportError, match=r"pooled Spearman \d\.\d{4} over \d+ pairs \(>= 1.01 required\).*"
                                          r"failed because pooled Spearman \d\.\d{4} < 1.01"):
        export_model(v1_checkpoint, tmp_path / "out", dtype="int8", progress=False)
    manifest = read_manifest(tmp_path / "out")
    assert manifest.failed_validation and manifest.validation.decided_by == "spearman_pooled"
    assert manifest.validation.tolerance.min_spearman_pooled == 1.01


def test_validation_scores_through_the_shipped_reranker(v1_artifact: Path, v1_checkpoint: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the run time's activation must fail validation (it had its own sigmoid before)."""
    from onnx_export.validate import validate_artifact

    manifest = read_manifest(v1_artifact)
    record = validate_artifact(v1_artifact, manifest, str(v1_checkpoint))
    assert record.passed and record.decided_by == "max_abs_diff" and "MxbaiReranker" in record.scored_with
    monkeypatch.setattr(Scorer, "activate", lambda self, raw, normalize=False: np.asarray(raw))  # a forgotten sigmoid
    broken = validate_artifact(v1_artifact, manifest, str(v1_checkpoint))
    assert not broken.passed and any("max abs diff unpadded" in f for f in broken.failures)


def test_validation_reference_seam(v1_artifact: Path, v1_checkpoint: Path) -> None:
    from onnx_export import validate

    made: list[tuple[str, str, int, str | None]] = []

    def factory(family: str, source: str, max_length: int, revision: str | None) -> Any:
        made.append((family, source, max_length, revision))
        ref = validate.LibraryReference(family, source, max_length, revision)
        ref.name = "plain torch forward (test)"
        return ref

    record = validate.validate_artifact(v1_artifact, read_manifest(v1_artifact), str(v1_checkpoint), reference=factory)
    assert made == [("v1", str(v1_checkpoint), 256, None)]
    assert record.passed and record.reference == "plain torch forward (test)"
    with pytest.raises(ValueError, match="reference must be one of"):
        validate.validate_artifact(v1_artifact, read_manifest(v1_artifact), str(v1_checkpoint), reference="nope")


# -- 5. TensorRT: batches within the profile, fp32 artifacts in fp32 --------------------------------------------


def test_tensorrt_runs_fp32_artifacts_in_fp32_unless_asked(tmp_path: Path) -> None:
    def fp16(dtype: str, spec: prov.ProviderSpec = prov.TRT) -> bool:
        opts = prov.with_default_options([spec], cache_dir=tmp_path, artifact_key="k", batch_size=8, max_length=512,
                                         artifact_dtype=dtype)[0][1]
        return opts["trt_fp16_enable"]

    assert fp16("fp32") is False and fp16("int8") is False
    assert fp16("fp16") is True
    assert fp16("fp32", (prov.TRT, {"trt_fp16_enable": True})) is True


class _FakeTrtSession:
    """Stands in for an onnxruntime session on a TensorRT machine: records the shapes it is fed."""

    instances: list[_FakeTrtSession] = []

    def __init__(self, path: str, options: Any, providers: list[Any]) -> None:
        self.requested = providers
        self.shapes: list[tuple[int, int]] = []
        _FakeTrtSession.instances.append(self)

    def get_providers(self) -> list[str]:
        return [prov.TRT, prov.CPU]

    def get_inputs(self) -> list[Any]:
        return [type("Arg", (), {"name": n})() for n in ("input_ids", "attention_mask")]

    def get_outputs(self) -> list[Any]:
        return [type("Arg", (), {"name": "score"})()]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.shapes.append(feeds["input_ids"].shape)
        return [np.zeros(feeds["input_ids"].shape[0], np.float32)]


@pytest.mark.parametrize("providers, profile_rows", [
    ([prov.TRT, prov.CPU], 4),  # the profile is built from the constructor's batch_size
    ([(prov.TRT, {"trt_profile_max_shapes": "input_ids:3x512,attention_mask:3x512"}), prov.CPU], 3),
])
def test_tensorrt_batches_never_exceed_the_profile(
    v1_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, providers: list[Any], profile_rows: int
) -> None:
    from langchain_core.documents import Document

    from mxbai_integrations.langchain import MxbaiCompressor

    monkeypatch.setattr(reranker_mod.ort, "get_available_providers", lambda: [prov.TRT, prov.CUDA, prov.CPU])
    monkeypatch.setattr(reranker_mod.ort, "InferenceSession", _FakeTrtSession)
    _FakeTrtSession.instances.clear()
    reranker = MxbaiReranker(v1_artifact, providers=providers, batch_size=4, cache_dir=tmp_path)
    session = _FakeTrtSession.instances[-1]
    opts = dict(session.requested[0][1])
    assert opts["trt_fp16_enable"] is False  # an fp32 artifact
    docs = [f"document number {i} " * (1 + i % 5) for i in range(23)]
    reranker.score(QUERY, docs, batch_size=32)
    MxbaiCompressor(model=reranker, top_n=3, batch_size=64).compress_documents(
        [Document(page_content=d) for d in docs], QUERY)
    assert session.shapes and max(rows for rows, _ in session.shapes) == profile_rows
    max_len = int(opts["trt_profile_max_shapes"].split(",")[0].split("x")[1])
    assert max(width for _, width in session.shapes) <= max_len


# -- 6. manifest hygiene; graph names from the manifest ----------------------------------------------------------


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["files"].update({"../outside.onnx": d["files"]["tokenizer.json"]}), "plain file name"),
    (lambda d: d["files"].update({"/etc/passwd": d["files"]["tokenizer.json"]}), "plain file name"),
    (lambda d: d["files"].update({"sub/model.onnx": d["files"]["tokenizer.json"]}), "plain file name"),
    (lambda d: d["files"].update({"C:\\x.onnx": d["files"]["tokenizer.json"]}), "plain file name"),
    (lambda d: d["files"].pop("model.onnx"), "does not list 'model.onnx'"),
    (lambda d: d.update(padding_side="middle"), "padding_side must be one of"),
    (lambda d: d.update(inputs=["input_ids"]), "manifest inputs"),
    (lambda d: d.update(outputs=[]), "manifest outputs"),
])
def test_manifest_hygiene(v1_artifact: Path, tmp_path: Path, edit: Any, match: str) -> None:
    art = copy_artifact(v1_artifact, tmp_path / "art")
    edit_manifest(art, edit)
    with pytest.raises(ArtifactError, match=match):
        MxbaiReranker(art, providers=CPU)


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


# -- 7. v1 max_length above the model's positions ---------------------------------------------------------------


def test_v1_max_length_above_positions_is_clamped_with_a_warning(v1_artifact: Path, v1_reference: Any) -> None:
    with pytest.warns(UserWarning, match="max_length: 1024 is more than the 512 positions"):
        reranker = MxbaiReranker(v1_artifact, providers=CPU, max_length=1024)
    assert reranker.max_length == 512
    docs = ["Paris " * 900, "capital of France " * 400, "short"]
    assert max(len(r) for r in reranker.encode(QUERY, docs)) == 512
    want = v1_reference_scores(v1_reference, QUERY, docs)
    np.testing.assert_allclose(reranker.score(QUERY, docs, batch_size=1), want, atol=1e-4, rtol=0)


# -- 8. adapters set the reranker's options through reranker_kwargs ---------------------------------------------


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


# -- 9. CLI: internal errors are exit 1 and one line, the traceback under -v ------------------------------------


def test_cli_internal_error_is_exit_1_with_traceback_only_under_verbose(
    v1_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    args = ["rerank", str(v1_artifact), "--query", QUERY, str(docs), "--providers", "cpu"]

    def broken_rank(self: MxbaiReranker, *a: Any, **k: Any) -> Any:
        return np.zeros(3) + np.zeros(4)  # a ValueError from inside numpy: a bug, not the user's mistake

    monkeypatch.setattr(MxbaiReranker, "rank", broken_rank)
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mxbai-onnx: error: internal error: ValueError")
    assert "rerun with -v" in lines[0] and "Traceback" not in err
    assert cli.main(["-v", *args]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "broken_rank" in err

    monkeypatch.setattr(MxbaiReranker, "rank", lambda self, *a, **k: [][0])  # IndexError: never escapes main()
    assert cli.main(args) == 1
    assert "internal error: IndexError" in capsys.readouterr().err
    # a ValueError our own argument checks raise is still a usage error
    monkeypatch.undo()
    assert cli.main([*args, "--instruction", "only v2 has instructions"]) == 2
    assert "v2" in capsys.readouterr().err


def test_cli_rerank_matches_the_reference_library(
    v2_artifact: Path, v2_reference: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    assert cli.main(["rerank", str(v2_artifact), "--query", QUERY, str(docs), "--json", "--providers", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ref = v2_reference.rank(QUERY, DOCS, return_documents=True)
    assert [r["index"] for r in rows] == [int(r.index) for r in ref]
    np.testing.assert_allclose([r["score"] for r in rows], [float(r.score) for r in ref], atol=1e-3, rtol=0)


# -- 10. ProviderError is a ValueError -------------------------------------------------------------------------


def test_provider_error_is_a_value_error(v1_artifact: Path) -> None:
    assert issubclass(ProviderError, ValueError) and issubclass(ProviderError, RuntimeError)
    with pytest.raises(ValueError, match="NoSuchExecutionProvider"):
        MxbaiReranker(v1_artifact, providers=["NoSuchExecutionProvider"])
    assert "NoSuchExecutionProvider" not in ort.get_available_providers()


# -- 11. no test-fixture code in the installed packages ---------------------------------------------------------


def test_packages_hold_no_fixture_code_and_read_nothing_outside_the_repository() -> None:
    assert importlib.util.find_spec("onnx_export.random_models") is None
    root = Path(__file__).resolve().parents[1]
    for package in ("mxbai_integrations", "onnx_export"):
        for source in (root / package).rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            for needle in ("../shared", "model-configs.json", "random_models", "build_v1_checkpoint"):
                assert needle not in text, f"{source.relative_to(root)} mentions {needle!r}"
    assert (root / "tests" / "random_models.py").is_file() and (root / "tests" / "model_shapes.json").is_file()
