"""Bad input gets a clear error naming the argument, and loses nothing."""

from __future__ import annotations

import json
import shutil

import pytest

from mxbai_integrations import ArtifactError, MxbaiReranker, ProviderError
from mxbai_integrations.artifact import MANIFEST_NAME


@pytest.fixture(scope="module")
def v2(v2_artifact) -> MxbaiReranker:
    return MxbaiReranker(v2_artifact)


@pytest.fixture(scope="module")
def v1(v1_artifact) -> MxbaiReranker:
    return MxbaiReranker(v1_artifact)


@pytest.mark.parametrize("query, exc, match", [
    ("", ValueError, "query must be a non-empty string"),
    ("   ", ValueError, "query must be a non-empty string"),
    (None, TypeError, "query must be a str, got NoneType"),
    (b"bytes", TypeError, "query must be a str, got bytes"),
])
def test_bad_query(v2, query, exc, match):
    with pytest.raises(exc, match=match):
        v2.rank(query, ["doc"])


@pytest.mark.parametrize("documents, match", [
    (None, "documents must be a list of str, got NoneType"),
    ("a bare string", "documents must be a list of str, got str"),
    (b"bytes", "documents must be a list of str, got bytes"),
    (42, "documents must be a list of str, got int"),
    (["ok", 3], r"documents\[1\] must be a str, got int"),
    (["ok", None], r"documents\[1\] must be a str, got NoneType"),
    ([b"bytes"], r"documents\[0\] must be a str, got bytes"),
])
def test_bad_documents(v2, documents, match):
    with pytest.raises(TypeError, match=match):
        v2.rank("query", documents)


def test_empty_document_list_returns_empty(v2):
    assert v2.rank("query", []) == []
    assert v2.score("query", []) == []


def test_empty_string_documents_are_scored(v2, v1):
    for reranker in (v1, v2):
        results = reranker.rank("query", ["", "", "real text"])
        assert len(results) == 3 and all(isinstance(r.score, float) for r in results)


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True])
def test_bad_top_k(v2, top_k):
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        v2.rank("query", ["doc"], top_k=top_k)


def test_top_k_larger_than_documents(v2):
    assert len(v2.rank("query", ["a", "b"], top_k=10)) == 2


def test_bad_batch_size(v2, v2_artifact):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        v2.rank("query", ["doc"], batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        MxbaiReranker(v2_artifact, batch_size=-4)


def test_instruction_on_v1_is_an_error(v1):
    with pytest.raises(ValueError, match="instruction is only supported by v2"):
        v1.rank("query", ["doc"], instruction="be strict")


def test_instruction_must_be_str(v2):
    with pytest.raises(TypeError, match="instruction must be a str"):
        v2.rank("query", ["doc"], instruction=3)


def test_megabyte_document_is_truncated_and_scored(v2, v2_artifact):
    huge = "A very long document about rivers and cities. " * 23_000  # ~1 MB
    assert len(huge) > 1_000_000
    results = v2.rank("rivers", ["short one", huge])
    assert len(results) == 2
    assert len(v2.encode("rivers", [huge])[0]) <= v2.max_length + v2.manifest.prompt.predefined_length


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="model: .* does not exist"):
        MxbaiReranker(tmp_path / "nowhere")


def test_directory_that_is_not_an_artifact(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an mxbai ONNX artifact"):
        MxbaiReranker(tmp_path)


def test_unknown_format_version(v1_artifact, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(v1_artifact, art)
    data = json.loads((art / MANIFEST_NAME).read_text())
    data["format_version"] = 99
    (art / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="format_version 99 is not supported.*reads format_version 1"):
        MxbaiReranker(art)


def test_malformed_manifest(v1_artifact, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(v1_artifact, art)
    (art / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        MxbaiReranker(art)


def test_corrupted_model_is_caught_by_checksum(v1_artifact, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(v1_artifact, art)
    model = art / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="'model.onnx' is corrupt: sha256"):
        MxbaiReranker(art)


def test_truncated_model_is_caught_by_size(v1_artifact, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(v1_artifact, art)
    model = art / "model.onnx"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="'model.onnx' is corrupt: 100 bytes"):
        MxbaiReranker(art, verify=False)


def test_missing_tokenizer_file(v1_artifact, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(v1_artifact, art)
    (art / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="'tokenizer.json' is missing"):
        MxbaiReranker(art)


def test_provider_onnxruntime_lacks(v1_artifact):
    with pytest.raises(ProviderError, match=r"providers: \['NoSuchExecutionProvider'\] not offered"):
        MxbaiReranker(v1_artifact, providers=["NoSuchExecutionProvider"])


def test_tensorrt_request_without_tensorrt(v1_artifact):
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build offers TensorRT")
    with pytest.raises(ProviderError, match="TensorrtExecutionProvider"):
        MxbaiReranker(v1_artifact, providers=["TensorrtExecutionProvider", "CPUExecutionProvider"])


def test_providers_string_other_than_auto(v1_artifact):
    with pytest.raises(ValueError, match="providers must be 'auto' or a list"):
        MxbaiReranker(v1_artifact, providers="CPUExecutionProvider")


def test_bad_model_type():
    with pytest.raises(TypeError, match="model must be a path, a hub id or None"):
        MxbaiReranker(42)


def test_hub_id_without_export_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_export(name, *args, **kwargs):
        if name == "onnx_export":
            raise ImportError("simulated: export extra not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_export)
    with pytest.raises(ImportError, match=r'mxbai-integrations\[export\]'):
        MxbaiReranker("mixedbread-ai/mxbai-rerank-base-v2", cache_dir=tmp_path)
