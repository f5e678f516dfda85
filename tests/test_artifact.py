"""mxbai_integrations.artifact: the manifest contract every artifact is read through.

The manifest comes from wherever the artifact came from, so reading it checks that file names are
plain names inside the artifact directory, that the graph file is listed, and that padding side,
inputs and outputs are ones the run time understands. Each case edits one field of a copy of the
fixture artifact and expects an ArtifactError naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from artifact_edits import CPU, copy_artifact, edit_manifest

from mxbai_integrations import ArtifactError, MxbaiReranker


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
