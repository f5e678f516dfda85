"""mxbai_integrations.validation_record: the typed record of how an artifact compared with the reference.

The record is stored in the manifest, so it must read the untyped dicts older manifests hold and
round-trip through the manifest JSON unchanged; and it knows which statistic decided its verdict
(score differences for fp32, pooled Spearman for reduced precision), which ``mxbai-onnx info``
prints rather than a statistic that was only recorded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from artifact_edits import copy_artifact, edit_manifest

from mxbai_integrations import ValidationRecord, cli
from mxbai_integrations.artifact import read_manifest, write_manifest

OLD_INT8_RECORD = {  # the dict form manifests were written in before the record was typed
    "reference": "mxbai-rerank 0.1.6 MxbaiRerankV2", "reference_dtype": "fp32", "max_length": 256,
    "cases": [{"case": "short", "pairs": 5, "token_ids_equal": True, "max_abs_diff_unpadded": 0.05,
               "max_abs_diff_padded": 0.06, "spearman": 0.8, "top1_agrees": True}],
    "pairs": 5, "token_ids_equal": True, "max_abs_diff_unpadded": 0.05, "max_abs_diff_padded": 0.06,
    "spearman_min": 0.8, "spearman_pooled": 0.97, "top1_agreement": 1.0,
    "tolerance": {"spearman_pooled": 0.95}, "passed": True,
}


# -- older manifests and the manifest round trip --------------------------------------------------------------------


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


# -- the statistic that decided the verdict is the one printed ------------------------------------------------------


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
