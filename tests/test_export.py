"""Exporter: graph parity with the reference libraries, the manifest contract, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mxbai_integrations.artifact import FORMAT_VERSION, MANIFEST_NAME, TOKENIZER_NAME, read_manifest
from mxbai_integrations.batching import pad_batch
from mxbai_integrations.prompt import V1PairEncoder, V2PromptEncoder
from onnx_export import ExportError, export_model, v2_prompt
from onnx_export.hard_texts import HARD_TEXTS
from onnx_export.tokenizer_check import TokenizerCheck

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany and a large city with many museums.",
    "",
    "Der Eiffelturm steht in Paris. 埃菲尔铁塔位于巴黎。",
    "Bananas " * 40,
    "a",
]


def _session(artifact: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, rows: list[list[int]], pad_id: int, side: str = "right") -> np.ndarray:
    ids, mask = pad_batch(rows, pad_id, side=side)
    return session.run(["score"], {"input_ids": ids, "attention_mask": mask})[0].astype(np.float64)


def _tokenizer(artifact: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(artifact / TOKENIZER_NAME))


# -- v1 ------------------------------------------------------------------------------------------------
def test_v1_graph_matches_cross_encoder_and_mxbai_v1(v1_artifact, v1_checkpoint, v1_reference):
    from mxbai_rerank import MxbaiRerankV1

    manifest = read_manifest(v1_artifact)
    rows = V1PairEncoder(_tokenizer(v1_artifact), manifest.max_length).encode(QUERY, DOCS)
    ref_ids = v1_reference.tokenizer([QUERY] * len(DOCS), DOCS, truncation=True, max_length=512)["input_ids"]
    assert rows == [list(r) for r in ref_ids]

    session = _session(v1_artifact)
    logits_single = np.concatenate([_run(session, [r], manifest.pad_token_id) for r in rows])
    logits_padded = _run(session, rows, manifest.pad_token_id)
    ours_single, ours_padded = 1 / (1 + np.exp(-logits_single)), 1 / (1 + np.exp(-logits_padded))
    pairs = [(QUERY, d) for d in DOCS]
    ref_single = np.asarray(v1_reference.predict(pairs, batch_size=1, show_progress_bar=False), np.float64)
    ref_padded = np.asarray(v1_reference.predict(pairs, batch_size=len(pairs), show_progress_bar=False), np.float64)
    assert np.abs(ours_single - ref_single).max() <= 1e-4
    assert np.abs(ours_padded - ref_padded).max() <= 1e-3
    assert list(np.argsort(-ours_padded)) == list(np.argsort(-ref_single))
    assert ref_single.std() > 0.05, "fixture scores must spread, or the ranking comparison means nothing"

    mxbai_v1 = MxbaiRerankV1(str(v1_checkpoint), device="cpu", torch_dtype=torch.float32)
    ref2 = mxbai_v1.predict([QUERY] * len(DOCS), DOCS).double().numpy()
    assert np.abs(ours_padded - ref2).max() <= 1e-3


def test_v1_manifest(v1_artifact):
    data = json.loads((v1_artifact / MANIFEST_NAME).read_text())
    assert data["format_version"] == FORMAT_VERSION
    assert data["family"] == "v1" and data["dtype"] == "fp32" and data["opset"] == 18
    assert data["inputs"] == ["input_ids", "attention_mask"] and data["outputs"] == ["score"]
    assert data["max_length"] == 512 and data["pad_token_id"] == 0
    assert data["score"]["activation"] == "sigmoid"
    assert data["prompt"] is None
    v = data["validation"]
    assert v["passed"] and v["token_ids_equal"] and v["max_abs_diff_unpadded"] <= 1e-4
    assert v["reference"].startswith("sentence-transformers")
    assert {c["case"] for c in v["cases"]} >= {"short", "long", "multilingual", "empty-ish", "hard-texts"}
    # The hard texts are in every record: scored as a case, and every one of them checked for ids.
    assert data["created_with"]["tokenizer"].startswith("the checkpoint's tokenizer.json")
    typed = v.get("tokenizer_check")  # the record's own field where mxbai_integrations has it, else created_with
    check = TokenizerCheck.from_dict(typed).summary() if typed else data["created_with"]["tokenizer_check"]
    assert check.startswith(f"{len(HARD_TEXTS)} hard texts: the artifact's ids equal the checkpoint's"), check
    assert (v["tolerance"].get("relative_to_spread_unpadded") == 1e-4
            or data["created_with"]["fp32_tolerance"].startswith("max abs diff <= max(0.0001"))
    model = onnx.load(str(v1_artifact / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    out = model.graph.output[0]
    assert out.name == "score" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert len(out.type.tensor_type.shape.dim) == 1


# -- v2 ------------------------------------------------------------------------------------------------
def test_prompt_constants_are_the_reference(v2_reference):
    from mxbai_rerank import MxbaiRerankV2

    assert v2_prompt.SEP == MxbaiRerankV2.sep
    assert v2_prompt.TASK_PROMPT == MxbaiRerankV2.task_prompt
    assert v2_prompt.QUERY_TEMPLATE == MxbaiRerankV2.query_prompt
    assert v2_prompt.DOCUMENT_TEMPLATE == MxbaiRerankV2.doc_prompt
    assert v2_prompt.INSTRUCTION_TEMPLATE == MxbaiRerankV2.instruction_prompt
    assert v2_prompt.CHAT_PREFIX == MxbaiRerankV2.chat_template["prefix"]
    assert v2_prompt.CHAT_SUFFIX == MxbaiRerankV2.chat_template["suffix"]


def test_v2_manifest_prompt_segments_equal_reference(v2_artifact, v2_reference):
    manifest = read_manifest(v2_artifact)
    p = manifest.prompt
    assert p is not None
    assert p.prefix_ids == v2_reference.chat_template_prefix_inputs
    assert p.sep_ids == v2_reference.sep_inputs
    assert p.task_ids == v2_reference.task_prompt_inputs
    assert p.suffix_ids == v2_reference.chat_template_suffix_inputs
    assert p.predefined_length == v2_reference.predefined_length
    assert p.model_max_length == v2_reference.model_max_length
    assert manifest.score.token_ids == {"1": v2_reference.yes_loc, "0": v2_reference.no_loc}
    assert manifest.score.activation == "identity" and manifest.score.normalize_shift == 6.0
    assert manifest.max_length == 8192 and manifest.pad_token_id == 151643
    assert manifest.valid and manifest.validation.reference.startswith("mxbai-rerank 0.1.6")


@pytest.mark.parametrize("max_length", [64, 8192])
@pytest.mark.parametrize("instruction", [None, "Find the capital city."])
def test_v2_token_ids_equal_reference(v2_artifact, v2_checkpoint, max_length, instruction):
    from mxbai_rerank import MxbaiRerankV2

    ref = MxbaiRerankV2(str(v2_checkpoint), device="cpu", torch_dtype=torch.float32, max_length=max_length)
    encoder = V2PromptEncoder(_tokenizer(v2_artifact), read_manifest(v2_artifact).prompt, max_length)
    long_query = "where is the river " * 30  # over the 3/4 query budget at max_length 64
    huge_doc = "The Seine flows through Paris. " * 40_000  # ~1.2 MB, far past max_length
    for query in (QUERY, long_query):
        docs = [*DOCS, huge_doc]
        batch = ref.prepare_inputs([query] * len(docs), docs, instruction=instruction)
        ref_rows = [ids[m.bool()].tolist() for ids, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)]
        assert encoder.encode(query, docs, instruction=instruction) == ref_rows


def test_v2_graph_matches_mxbai_rerank(v2_artifact, v2_reference):
    manifest = read_manifest(v2_artifact)
    rows = V2PromptEncoder(_tokenizer(v2_artifact), manifest.prompt, 8192).encode(QUERY, DOCS)
    session = _session(v2_artifact)
    ours_single = np.concatenate([_run(session, [r], manifest.pad_token_id) for r in rows])
    ours_right = _run(session, rows, manifest.pad_token_id, side="right")
    ref_single = np.concatenate([v2_reference.predict([QUERY], [d]).double().numpy() for d in DOCS])
    ref_padded = v2_reference.predict([QUERY] * len(DOCS), DOCS).double().numpy()
    assert np.abs(ours_single - ref_single).max() <= 1e-4
    # The reference pads left, the graph (causal GroupQueryAttention) takes right padding: same scores.
    assert manifest.padding_side == "right"
    assert np.abs(ours_right - ref_padded).max() <= 1e-3
    # The amount of padding does not move a row's score.
    assert np.abs(ours_right - ours_single).max() <= 1e-4
    assert list(np.argsort(-ours_right)) == list(np.argsort(-ref_single))
    assert ref_single.std() > 0.2


def test_v2_graph_has_no_vocabulary_head(v2_artifact):
    """Only the embedding Gather touches the [vocab, hidden] matrix; no [batch, seq, vocab] logits."""
    model = onnx.load(str(v2_artifact / "model.onnx"))
    vocab_inits = {t.name for t in model.graph.initializer if t.dims and t.dims[0] == 151936}
    assert vocab_inits
    users = [n.op_type for n in model.graph.node for i in n.input if i in vocab_inits]
    assert users and set(users) == {"Gather"}


# -- reduced precision -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["v1", "v2"])
@pytest.mark.parametrize("dtype", ["fp16", "int8"])
def test_reduced_precision_artifacts_rank_like_fp32(family, dtype, request, export_artifact):
    checkpoint = request.getfixturevalue(f"{family}_checkpoint")
    fp32 = request.getfixturevalue(f"{family}_artifact")
    artifact = export_artifact(checkpoint, dtype)
    manifest = read_manifest(artifact)
    assert manifest.dtype == dtype and manifest.valid
    v = manifest.validation
    assert v.token_ids_equal and v.top1_agreement == 1.0 and v.decided_by == "spearman_pooled"
    assert 0 < v.max_abs_diff_unpadded < 0.5  # drift is recorded, and it is a real (non-zero) drift
    if dtype == "int8":
        assert "quantization" in manifest.created_with
    encoder_args = (_tokenizer(artifact), manifest.max_length)
    if family == "v1":
        rows = V1PairEncoder(*encoder_args).encode(QUERY, DOCS)
    else:
        rows = V2PromptEncoder(_tokenizer(artifact), manifest.prompt, manifest.max_length).encode(QUERY, DOCS)
    ours = _run(_session(artifact), rows, manifest.pad_token_id)
    base = _run(_session(fp32), rows, manifest.pad_token_id)
    assert int(np.argmax(ours)) == int(np.argmax(base))


# -- refusals and bad input --------------------------------------------------------------------------
def test_unknown_architecture(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    ckpt = tmp_path / "bert"
    BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=64, num_labels=1)).save_pretrained(ckpt)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="source: .*'bert'.*supported are DeBERTa-v2"):
        export_model(ckpt, out, progress=False)
    assert not out.exists()


def test_missing_tokenizer_leaves_nothing(tmp_path, v1_checkpoint):
    ckpt = tmp_path / "no-tok"
    ckpt.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(v1_checkpoint / name, ckpt / name)
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        export_model(ckpt, out, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-tok"], "no staging directory left behind"


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="source"):
        export_model(tmp_path / "nope", tmp_path / "out", progress=False)


def test_unwritable_out_dir(tmp_path, v1_checkpoint):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="out_dir: cannot write"):
        export_model(v1_checkpoint, blocker / "out", progress=False)


def test_out_dir_not_empty_needs_force(tmp_path, v1_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty.*force"):
        export_model(v1_checkpoint, out, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    export_model(v1_checkpoint, out, force=True, validate=False, progress=False)
    assert (out / MANIFEST_NAME).is_file() and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_bad_dtype(tmp_path, v1_checkpoint):
    with pytest.raises(ValueError, match="dtype must be one of"):
        export_model(v1_checkpoint, tmp_path / "out", dtype="bf16", progress=False)


def test_validation_failure_is_refused(tmp_path, v1_checkpoint, monkeypatch):
    from onnx_export import validate

    monkeypatch.setattr(validate, "TOL_UNPADDED", 0.0)  # nothing can pass a zero tolerance
    monkeypatch.setattr(validate, "REL_TOL_UNPADDED", 0.0)
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="validation against sentence-transformers .* failed"):
        export_model(v1_checkpoint, out, progress=False)
    assert read_manifest(out).valid is False


@pytest.mark.parametrize("one_file", [True, False])
def test_external_data_is_renamed(tmp_path, one_file):
    """One data file is moved and its references rewritten; a file per tensor is gathered into one."""
    from onnx import TensorProto, helper, numpy_helper

    from onnx_export.exporter import _normalise_external_data

    weights = [np.arange(4096, dtype=np.float32).reshape(64, 64) + i for i in range(2)]
    names = ["model.onnx_w0", "model.onnx_w1"]  # a file per tensor is named after the tensor
    nodes = [helper.make_node("MatMul", ["x", names[0]], ["h"]), helper.make_node("MatMul", ["h", names[1]], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
                              [numpy_helper.from_array(w, name) for w, name in zip(weights, names, strict=True)])
    src = tmp_path / "src"
    src.mkdir()
    onnx.save_model(helper.make_model(graph), str(src / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=one_file, location="model.onnx_data", size_threshold=0)
    dst = tmp_path / "dst"
    dst.mkdir()
    _normalise_external_data(src / "model.onnx", dst)
    assert sorted(p.name for p in dst.iterdir()) == ["model.onnx", "model.onnx.data"]
    x = np.ones((1, 64), np.float32)
    y = ort.InferenceSession(str(dst / "model.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, x @ weights[0] @ weights[1], rtol=1e-6)


# -- modes: artifacts are readable as any file the user writes ---------------------------
def _modes(root: Path) -> dict[str, int]:
    import stat

    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("umask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_artifact_modes_follow_the_umask(umask, dir_mode, file_mode, tmp_path, v1_checkpoint, monkeypatch):
    """Staging in a mkdtemp directory (0700) must not leak into the artifact; external data included."""
    import os

    from onnx_export import torch_exporter

    monkeypatch.setattr(torch_exporter, "_PROTO_LIMIT", 1024)  # force model.onnx.data on a tiny model
    previous = os.umask(umask)
    try:
        out = export_model(v1_checkpoint, tmp_path / "nested" / "art", exporter="torch", validate=False,
                           progress=False)
    finally:
        os.umask(previous)
    modes = _modes(out)
    assert "art/model.onnx.data" in modes and "art/tokenizer.json" in modes
    assert modes.pop("art") == dir_mode
    assert set(modes.values()) == {file_mode}, modes
    import stat

    assert stat.S_IMODE((tmp_path / "nested").stat().st_mode) == dir_mode


_FIRST_USE = """
import os, sys
os.umask(0o022)
from mxbai_integrations import MxbaiReranker
from onnx_export import export_model
reranker = MxbaiReranker(sys.argv[1])
print("loaded", reranker.path, reranker.manifest.valid)
export_model(sys.argv[2], sys.argv[3], exporter="torch", validate=False, progress=False)
"""


def test_first_use_export_is_quiet_and_readable(v1_checkpoint, v2_checkpoint, tmp_path):
    """A user's first-use export, in a fresh process: one progress bar of ours, no library chatter.

    Before: transformers' "incorrect regex pattern ... fix_mistral_regex" three times, "`torch_dtype`
    is deprecated", "Loading checkpoint shards" bars, torch's exporter's "torchvision is not installed"
    four times; and a 0700 cache entry with a 0600 model.onnx.data. (A fresh process, because library
    loggers bound to pytest's streams at import would hide their output from capfd.)
    """
    import os
    import stat
    import subprocess
    import sys

    env = {**os.environ, "MXBAI_INTEGRATIONS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", _FIRST_USE, str(v2_checkpoint), str(v1_checkpoint),
                           str(tmp_path / "v1-torch")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    for chatter in ("fix_mistral_regex", "incorrect regex", "torch_dtype", "Loading checkpoint shards",
                    "torchvision", "Warning", "warn(", "deprecated"):
        assert chatter not in text, f"{chatter!r} in the export output:\n{text}"
    assert done.stdout.startswith("loaded ") and done.stdout.split()[2] == "True", text
    bars = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert {line.split(":")[0] for line in bars} == {"export v2 fp32"}, text  # our bar, nothing else
    artifact = Path(done.stdout.split()[1])
    modes = _modes(artifact)
    assert modes.pop(artifact.name) == 0o755 and set(modes.values()) == {0o644}
    cache = tmp_path / "cache"
    assert {stat.S_IMODE(p.stat().st_mode) for p in [cache, *cache.rglob("*")] if p.is_dir()} == {0o755}


# -- validate: a reference of the other family is the user's mistake -------------------
def test_validate_refuses_a_reference_of_the_other_family(v2_artifact, v1_checkpoint, monkeypatch, capsys):
    from mxbai_integrations import cli
    from mxbai_integrations.errors import ArgumentError
    from onnx_export import validate

    def loads_weights(*args, **kwargs):
        raise AssertionError("a family mismatch must be refused before any weights load")

    monkeypatch.setattr(validate, "LibraryReference", loads_weights)
    monkeypatch.setitem(validate.REFERENCES, validate.DEFAULT_REFERENCE, loads_weights)
    monkeypatch.setattr(validate, "Scorer", loads_weights)
    with pytest.raises(ArgumentError, match=r"reference: .*tiny-v1.* is a v1 \(DeBERTa-v2 cross-encoder\) "
                                            r"checkpoint, but the artifact is a v2 \(Qwen2 LLM reranker\) model"):
        validate.validate_artifact(v2_artifact, read_manifest(v2_artifact), str(v1_checkpoint))
    assert cli.main(["validate", str(v2_artifact), "--reference", str(v1_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "v1" in err and "v2" in err and "internal error" not in err  # one line, exit 2 (the CLI's wording)
