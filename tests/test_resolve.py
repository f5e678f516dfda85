"""mxbai_integrations.resolve: which artifact a model name resolves to, and which it refuses to serve.

A first-use export lands in the cache with its validation record; an artifact whose validation
failed must never be served silently from there, while a directory the caller names explicitly is
loaded with a warning that says why. The manifest is edited in a copy of the fixture artifact to
flip the recorded verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from artifact_edits import CPU, copy_artifact, edit_manifest

from mxbai_integrations import ArtifactError, MxbaiReranker
from mxbai_integrations.resolve import _cache_key


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
