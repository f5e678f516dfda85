"""Both export paths, one artifact contract: Optimum (TorchScript) and torch's own exporter (dynamo).

This file runs in both CI environments: the pinned one (transformers 4.57 + optimum-onnx, where both
paths run) and the transformers-5 one (sentence-transformers 6, no Optimum: the torch path only).
The reference here is independent of our code: the untouched checkpoint's own forward in torch
(full lm_head, SDPA attention, logit("1") - logit("0") at the last token) and sentence-transformers'
CrossEncoder; token ids against mxbai_rerank are checked in test_export.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from mxbai_integrations import MxbaiReranker
from mxbai_integrations.artifact import read_manifest
from mxbai_integrations.batching import pad_batch
from onnx_export import export_model
from onnx_export.exporter import exporter_available

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany and a large city with many museums.",
    "",
    "Der Eiffelturm steht in Paris. 埃菲尔铁塔位于巴黎。",
    "Bananas " * 60,
    "a",
]


def _exporter(name: str) -> str:
    if not exporter_available(name):
        pytest.skip(f"exporter {name!r} is not installed here (extra `export-optimum`)")
    return name


@pytest.fixture(scope="module", params=["optimum", "torch"])
def v2_export(request: pytest.FixtureRequest, v2_checkpoint: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    exporter = _exporter(request.param)
    root = tmp_path_factory.mktemp("paths")
    yield export_model(v2_checkpoint, root / f"v2-{exporter}", exporter=exporter, progress=False)
    shutil.rmtree(root, ignore_errors=True)  # ~50 MB each; the disk is shared with the rest of the suite


@pytest.fixture(scope="module")
def checkpoint_forward(v2_checkpoint: Path):
    """score(rows) of the untouched checkpoint in torch: full forward, full lm_head, one row at a time."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(v2_checkpoint, dtype=torch.float32, attn_implementation="sdpa").eval()
    yes, no = 16, 15  # the token ids of "1" and "0" in the Qwen2 vocabulary

    def score(rows: list[list[int]]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for row in rows:
                logits = model(input_ids=torch.tensor([row])).logits[0, -1].double()
                out.append(float(logits[yes] - logits[no]))
        return np.asarray(out)

    return score


def test_v2_fused_graph_matches_the_checkpoint_forward(v2_export: Path, checkpoint_forward) -> None:
    reranker = MxbaiReranker(v2_export)
    rows = reranker.encode(QUERY, DOCS)
    expected = checkpoint_forward(rows)
    unpadded = np.asarray([reranker.score(QUERY, [d])[0] for d in DOCS])
    batched = np.asarray(reranker.score(QUERY, DOCS))
    assert np.abs(unpadded - expected).max() <= 1e-4
    assert np.abs(batched - expected).max() <= 1e-3
    assert list(np.argsort(-batched)) == list(np.argsort(-expected))
    assert expected.std() > 0.2  # a real spread, so the ranking check means something


def test_v2_graph_runs_attention_in_group_query_attention(v2_export: Path, v2_checkpoint: Path) -> None:
    """One fused GroupQueryAttention per layer; no Softmax, so no [batch, heads, L, L] tensor."""
    import json

    layers = json.loads((v2_checkpoint / "config.json").read_text())["num_hidden_layers"]
    graph = onnx.load(str(v2_export / "model.onnx"), load_external_data=False).graph
    ops = [(n.domain, n.op_type) for n in graph.node]
    assert ops.count(("com.microsoft", "GroupQueryAttention")) == layers
    assert not any(op == "Softmax" for _, op in ops)
    manifest = read_manifest(v2_export)
    assert manifest.created_with["attention"] == "GroupQueryAttention"
    assert manifest.created_with["exporter"] in ("optimum", "torch")
    assert manifest.padding_side == "right" and manifest.valid


def test_v2_right_padding_does_not_move_a_score(v2_export: Path) -> None:
    """GroupQueryAttention is causal with per-row lengths: any amount of right padding is inert."""
    import onnxruntime as ort

    reranker = MxbaiReranker(v2_export)
    rows = reranker.encode(QUERY, DOCS)
    session = ort.InferenceSession(str(v2_export / "model.onnx"), providers=["CPUExecutionProvider"])
    ids, mask = pad_batch(rows, reranker.manifest.pad_token_id)
    wide_ids = np.pad(ids, ((0, 0), (0, 40)), constant_values=reranker.manifest.pad_token_id)
    wide_mask = np.pad(mask, ((0, 0), (0, 40)))
    a = session.run(["score"], {"input_ids": ids, "attention_mask": mask})[0]
    b = session.run(["score"], {"input_ids": wide_ids, "attention_mask": wide_mask})[0]
    assert np.abs(a - b).max() <= 1e-4


def test_left_padding_on_a_fused_graph_is_refused(v2_export: Path, tmp_path: Path) -> None:
    """A manifest that says 'left' for a GroupQueryAttention graph would give wrong scores: refuse it."""
    import json
    import shutil

    from mxbai_integrations.artifact import ArtifactError

    art = Path(shutil.copytree(v2_export, tmp_path / "art"))
    manifest = json.loads((art / "mxbai_onnx.json").read_text())
    manifest["padding_side"] = "left"
    (art / "mxbai_onnx.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="padding_side must be 'right' for a GroupQueryAttention graph"):
        MxbaiReranker(art)


@pytest.mark.parametrize("exporter", ["optimum", "torch"])
def test_v1_export_matches_cross_encoder(exporter: str, v1_checkpoint: Path, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    artifact = export_model(v1_checkpoint, tmp_path / "v1", exporter=_exporter(exporter), progress=False)
    reranker = MxbaiReranker(artifact)
    cross = CrossEncoder(str(v1_checkpoint), device="cpu")
    expected = np.asarray([cross.predict([(QUERY, d)])[0] for d in DOCS], dtype=np.float64)
    ours = np.asarray([reranker.score(QUERY, [d])[0] for d in DOCS])
    assert np.abs(ours - expected).max() <= 1e-4
    assert np.abs(np.asarray(reranker.score(QUERY, DOCS)) - expected).max() <= 1e-3
    assert read_manifest(artifact).created_with["exporter"] == exporter


def test_prepare_for_model_shim_equals_transformers_4(v2_checkpoint: Path) -> None:
    """The method put back for mxbai-rerank on transformers 5 does what transformers 4's did for its call."""
    import random

    from transformers import AutoTokenizer

    from onnx_export.reference_compat import _prepare_for_model

    tokenizer = AutoTokenizer.from_pretrained(v2_checkpoint)
    if not hasattr(tokenizer, "prepare_for_model"):
        pytest.skip("this transformers has no prepare_for_model to compare with (transformers 5)")
    rng = random.Random(0)
    for _ in range(200):
        first = [rng.randrange(1000) for _ in range(rng.randrange(30))]
        second = [rng.randrange(1000) for _ in range(rng.randrange(30))]
        max_length = rng.randrange(1, 50)
        expected = tokenizer.prepare_for_model(first, second, truncation="only_second", max_length=max_length,
                                               padding=False, return_attention_mask=False,
                                               return_token_type_ids=False, add_special_tokens=False)["input_ids"]
        got = _prepare_for_model(first, second, truncation="only_second", max_length=max_length)["input_ids"]
        assert got == expected, (first, second, max_length)


def test_unknown_exporter_is_refused(v2_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exporter must be one of"):
        export_model(v2_checkpoint, tmp_path / "x", exporter="tflite", progress=False)
    assert not (tmp_path / "x").exists()


def test_cli_export_with_the_torch_exporter(v1_checkpoint: Path, tmp_path: Path) -> None:
    from mxbai_integrations.cli import main

    assert main(["export", str(v1_checkpoint), str(tmp_path / "a"), "--exporter", "torch", "-q"]) == 0
    manifest = read_manifest(tmp_path / "a")
    assert manifest.created_with["exporter"] == "torch" and manifest.valid
