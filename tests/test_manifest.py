"""Hand-edited and tampered artifacts: every one is refused with an ArtifactError naming the field or file.

Each case below loaded without an error before (and scored wrongly, or failed with a raw Python
error deep in the run time). The manifest is data from wherever the artifact came from, so the run
time checks every field, and what the manifest says about the graph against the graph itself.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mxbai_integrations import ArtifactError, MxbaiReranker
from mxbai_integrations.artifact import MANIFEST_NAME, TOKENIZER_NAME, file_record, read_manifest
from mxbai_integrations.graph import graph_ops

CPU = ["cpu"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit(artifact: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = artifact / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


V1_EDITS = [
    # Left padding moves every DeBERTa score ([0.53, 0.61, 0.87] -> [0.95, 0.94, 0.99] before this check).
    (_set("padding_side", value="left"), r"padding_side must be 'right' for a v1"),
    (_set("score", "activation", value="relu"), r"score.activation must be one of \('sigmoid',\)"),
    (_set("score", "activation", value="identity"), r"score.activation must be one of \('sigmoid',\)"),
    (_set("max_length", value=-1), r"max_length must be an integer in \[1, "),
    (_set("max_length", value="512"), r"max_length must be an integer"),
    (_set("pad_token_id", value=1e20), r"pad_token_id must be an integer"),
    (_set("pad_token_id", value=True), r"pad_token_id must be an integer"),
    (_set("opset", value=0), r"opset must be an integer"),
    (_set("format_version", value=True), r"format_version True is not supported"),
    (_set("source", "max_position_embeddings", value="512"), r"source.max_position_embeddings must be"),
    (_set("files", "model.onnx", "sha256", value="not-a-digest"), r"files\['model.onnx'\].sha256 must be"),
    (lambda d: d["files"].pop(TOKENIZER_NAME), r"does not list 'tokenizer.json'"),
    (_set("prompt", value={"prefix_ids": [1]}), r"v1 artifact must not have a 'prompt' section"),
    (_set("created_with", value={"exporter": 3}), r"created_with\['exporter'\] must be a string"),
]

@pytest.mark.parametrize("edit, match", V1_EDITS)
def test_tampered_v1_manifest_is_refused_naming_the_field(v1_artifact: Path, tmp_path: Path, edit: Any,
                                                         match: str) -> None:
    art = _copy(v1_artifact, tmp_path / "art")
    _edit(art, edit)
    with pytest.raises(ArtifactError, match=match):
        MxbaiReranker(art, providers=CPU)


@pytest.mark.parametrize("edit, match", [
    (_set("prompt", "query_budget_den", value=0), r"prompt.query_budget_den must be an integer in \[1, "),
    (_set("prompt", "query_budget_num", value=5), r"prompt.query_budget_num must be at most query_budget_den"),
    (_set("prompt", "model_max_length", value=10), r"prompt.model_max_length must be more than the \d+ template"),
    (_set("prompt", "model_max_length", value=65536), r"prompt.model_max_length must be at most the model's 32768"),
    (_set("prompt", "query_template", value="{query.__class__}"), r"exactly one plain '\{query\}' field"),
    (_set("prompt", "document_template", value="document: {doc}"), r"exactly one plain '\{document\}' field"),
    (_set("prompt", "sep_ids", value=[-1]), r"prompt.sep_ids\[0\] must be an integer"),
    (_set("prompt", value=None), r"v2 artifact has no 'prompt' section"),
    (_set("score", "activation", value="sigmoid"), r"score.activation must be one of \('identity',\)"),
    (_set("score", "normalize_shift", value=float("inf")), r"score.normalize_shift must be a finite number"),
    (_set("family", value="v3"), r"family must be one of"),
    (_set("dtype", value="int3"), r"dtype must be one of"),
])
def test_tampered_v2_manifest_is_refused_naming_the_field(v2_artifact: Path, tmp_path: Path, edit: Any,
                                                         match: str) -> None:
    art = _copy(v2_artifact, tmp_path / "art")
    _edit(art, edit)
    with pytest.raises(ArtifactError, match=match):
        MxbaiReranker(art, providers=CPU)


def test_left_padding_is_checked_against_the_graph_not_a_provenance_note(v2_artifact: Path, tmp_path: Path) -> None:
    """A GroupQueryAttention graph is exact only for right-padded rows, whatever created_with says."""
    assert graph_ops(v2_artifact / "model.onnx")[("com.microsoft", "GroupQueryAttention")] > 0

    def left_without_note(data: dict[str, Any]) -> None:
        data["padding_side"] = "left"
        data["created_with"].pop("attention", None)

    art = _copy(v2_artifact, tmp_path / "art")
    _edit(art, left_without_note)
    with pytest.raises(ArtifactError, match="padding_side must be 'right' for a GroupQueryAttention graph"):
        MxbaiReranker(art, providers=CPU)


def test_family_is_checked_against_the_graph(v1_artifact: Path, v2_artifact: Path, tmp_path: Path) -> None:
    """A self-consistent v1 manifest over a v2 graph (and the other way round) is refused by the graph check."""
    v2_as_v1 = _copy(v2_artifact, tmp_path / "v2-as-v1")

    def as_v1(data: dict[str, Any]) -> None:
        data.update(family="v1", prompt=None, score={"activation": "sigmoid"})

    _edit(v2_as_v1, as_v1)
    with pytest.raises(ArtifactError, match="manifest family is 'v1' but model.onnx is a v2 graph"):
        MxbaiReranker(v2_as_v1, providers=CPU)

    v1_as_v2 = _copy(v1_artifact, tmp_path / "v1-as-v2")
    prompt = read_manifest(v2_artifact).prompt
    assert prompt is not None

    def as_v2(data: dict[str, Any]) -> None:
        data.update(family="v2", prompt=prompt.__dict__, score={"activation": "identity", "normalize_shift": 4.5})
        data["source"]["max_position_embeddings"] = prompt.model_max_length

    _edit(v1_as_v2, as_v2)
    with pytest.raises(ArtifactError, match="manifest family is 'v2' but model.onnx is a v1 graph"):
        MxbaiReranker(v1_as_v2, providers=CPU)


def test_pad_token_id_must_be_a_token_of_the_tokenizer(v1_artifact: Path, tmp_path: Path) -> None:
    art = _copy(v1_artifact, tmp_path / "art")
    _edit(art, _set("pad_token_id", value=10**9))
    with pytest.raises(ArtifactError, match=r"pad_token_id 1000000000 is not a token of tokenizer.json"):
        MxbaiReranker(art, providers=CPU)


def test_malformed_tokenizer_file_is_named(v1_artifact: Path, tmp_path: Path) -> None:
    art = _copy(v1_artifact, tmp_path / "art")
    (art / TOKENIZER_NAME).write_text('{"version": "1.0", "model": {"type": "Nope"}}', encoding="utf-8")
    record = file_record(art / TOKENIZER_NAME)
    _edit(art, _set("files", TOKENIZER_NAME, value={"sha256": record.sha256, "bytes": record.bytes}))
    with pytest.raises(ArtifactError, match=r"tokenizer.json in .* is not a valid tokenizer file"):
        MxbaiReranker(art, providers=CPU)


@pytest.mark.parametrize("name", ["model.onnx", TOKENIZER_NAME])
def test_links_out_of_the_artifact_directory_are_refused(v1_artifact: Path, tmp_path: Path, name: str) -> None:
    """Same bytes, same checksum: still refused, because the file lives outside the artifact."""
    art = _copy(v1_artifact, tmp_path / "art")
    outside = tmp_path / "elsewhere" / name
    outside.parent.mkdir()
    shutil.move(art / name, outside)
    os.symlink(outside, art / name)
    with pytest.raises(ArtifactError, match=rf"artifact file '{name}' is a link to .* outside the artifact"):
        MxbaiReranker(art, providers=CPU)
    # A link that stays inside the directory is fine (a copy tool may make those).
    inside = art / f"{name}.real"
    shutil.move(outside, inside)
    os.remove(art / name)
    os.symlink(inside.name, art / name)
    assert MxbaiReranker(art, providers=CPU).score("q", ["a"])


def test_graph_ops_are_those_onnx_reads(v1_artifact: Path, v2_artifact: Path) -> None:
    """The protobuf walk that reads op types without the onnx package agrees with onnx itself."""
    from collections import Counter

    import onnx

    def nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:  # subgraphs (If/Loop branches) included
        out = []
        for node in graph.node:
            out.append(node)
            for attr in node.attribute:
                for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                    out.extend(nodes(sub))
        return out

    for art in (v1_artifact, v2_artifact):
        model = onnx.load(str(art / "model.onnx"), load_external_data=False)
        all_nodes = nodes(model.graph) + [n for f in model.functions for n in f.node]
        want = Counter(("" if n.domain == "ai.onnx" else n.domain, n.op_type) for n in all_nodes)
        assert graph_ops(art / "model.onnx") == want


def test_truncated_graph_is_an_artifact_error_naming_the_file(v1_artifact: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    data = (v1_artifact / "model.onnx").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="model.onnx' is not a readable ONNX model"):
        graph_ops(path)
