"""onnx_export/deberta_patches.py: the leaner DeBERTa attention computes transformers' scores.

The reference is transformers' own DebertaV2ForSequenceClassification, unpatched; the exported
artifact is checked against sentence-transformers by export_model itself (tests/test_export.py).
"""

from __future__ import annotations

import collections

import onnx
import pytest
import torch

QUERY = "what is the capital of france"
DOCS = ["Paris is the capital of France.", "Berlin is in Germany. " * 30, "no", "France " * 200]


def _model(checkpoint):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()


def test_p2c_index_is_the_transposed_c2p_index():
    """The shared index rests on bucket(-x) == -bucket(x); check it on transformers' functions, L up to 512."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

    span = 256
    x = torch.zeros(1, 512, 8)
    rel = build_relative_position(x, x, bucket_size=span, max_position=512)[0]
    c2p = torch.clamp(rel + span, 0, 2 * span - 1)
    p2c = torch.clamp(-rel + span, 0, 2 * span - 1)
    assert torch.equal(p2c.T, c2p)
    assert int(rel.abs().max()) > span // 2  # the log buckets are exercised, not only the linear band


def test_patched_model_matches_transformers(v1_checkpoint):
    from transformers import AutoTokenizer

    from onnx_export import deberta_patches

    tok = AutoTokenizer.from_pretrained(v1_checkpoint)
    padded = tok([QUERY] * len(DOCS), DOCS, padding=True, truncation=True, max_length=512, return_tensors="pt")
    model = _model(v1_checkpoint)
    with torch.no_grad():
        before = model(**padded).logits[:, 0]
        singles = torch.stack([model(**tok(QUERY, d, truncation=True, max_length=512, return_tensors="pt")).logits[0, 0]
                               for d in DOCS])
        assert deberta_patches.apply(model)
        after = model(**padded).logits[:, 0]
    assert padded["attention_mask"].min() == 0 and padded["input_ids"].shape[1] > 256
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    torch.testing.assert_close(after, singles, rtol=0, atol=1e-5)


def test_disabled_leaves_the_model_alone(v1_checkpoint):
    from onnx_export import deberta_patches

    model = _model(v1_checkpoint)
    with deberta_patches.disabled():
        assert deberta_patches.apply(model) is False
    assert deberta_patches.ENABLED is True
    assert "forward" not in vars(model.deberta.encoder.layer[0].attention.self)


@pytest.mark.parametrize("exporter", ["auto", "torch"])
def test_exported_graph_shares_one_index(exporter, v1_checkpoint, tmp_path):
    """One Expand for the whole graph, no Tile; export_model's validation (CrossEncoder) passes."""
    from onnx_export.exporter import export_model

    layers = _model(v1_checkpoint).config.num_hidden_layers
    artifact = export_model(v1_checkpoint, tmp_path / "v1", exporter=exporter, progress=False)
    ops = collections.Counter(n.op_type for n in onnx.load(str(artifact / "model.onnx")).graph.node)
    assert ops["GatherElements"] == 2 * layers
    assert ops["Expand"] <= 1 and ops["Tile"] == 0


def test_fp16_models_keep_the_transformers_graph(v1_checkpoint):
    """onnxruntime 1.32's CPU optimizer (level ALL) crashes on the patched fp16 graph; fp16 is left alone."""
    from onnx_export import deberta_patches

    model = _model(v1_checkpoint).half()
    assert deberta_patches.apply(model) is False
    assert "forward" not in vars(model.deberta.encoder.layer[0].attention.self)
