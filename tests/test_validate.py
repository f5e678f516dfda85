"""onnx_export.validate: export-time validation of an artifact against the reference library.

Validation scores through the run time's own Scorer, so a bug in the shipped path (a missing
activation, NaN/inf scores) fails it; reduced-precision exports are judged by pooled Spearman and
the export error says so; and the reference is a seam a test can replace with its own factory.
The reference scores come from the reference libraries, never from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mxbai_integrations import ValidationRecord
from mxbai_integrations.artifact import read_manifest
from mxbai_integrations.scorer import Scorer

# -- non-finite scores fail validation ------------------------------------------------------------------------------


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


# -- reduced precision is judged by pooled Spearman -----------------------------------------------------------------


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


# -- validated through the shipped scorer, against a replaceable reference ------------------------------------------


def test_validation_scores_through_the_shipped_reranker(v1_artifact: Path, v1_checkpoint: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the run time's activation must fail validation (it had its own sigmoid before)."""
    from onnx_export.validate import validate_artifact

    manifest = read_manifest(v1_artifact)
    record = validate_artifact(v1_artifact, manifest, str(v1_checkpoint))
    assert record.passed and record.decided_by == "max_abs_diff" and "Scorer" in record.scored_with
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
