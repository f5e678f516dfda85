"""The validation record: how an artifact's scores compared with the reference library at export.

The exporter writes it into the manifest; the run time reads it to refuse artifacts whose
validation failed (a cached first-use export) or to warn about them (an explicit directory);
``mxbai-onnx info``/``validate`` print it. It carries the tolerances it was judged by and which
statistic decided the verdict, so every printout shows what the verdict used.

Examples:
    >>> record = ValidationRecord.skipped_record()
    >>> record.passed, record.summary()
    (False, 'skipped (exported with --no-validate); run `mxbai-onnx validate`')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mxbai_integrations.errors import ArtifactError

# What decided a validation verdict: fp32 by score differences, fp16/int8 by the pooled rank agreement.
# "spearman_min" only appears in manifests written before the pooled statistic was introduced.
DecidedBy = Literal["max_abs_diff", "spearman_pooled", "spearman_min"]


def _num(value: Any) -> float:
    """A JSON number, or NaN for a missing/null one (a record from an older or failed validation)."""
    return float("nan") if value is None else float(value)


def _json_num(value: float) -> float | None:
    """Non-finite numbers are written as null: ``NaN``/``Infinity`` are not JSON."""
    return value if math.isfinite(value) else None


def format_stat(value: float, spec: str) -> str:
    """A statistic for display: formatted, or "n/a" when it is missing (NaN or inf)."""
    return format(value, spec) if math.isfinite(value) else "n/a"


@dataclass(frozen=True)
class Tolerances:
    """The limits a validation was judged by; None where a statistic was recorded but not judged.

    fp32 artifacts are judged by score differences (and top-1 agreement); fp16/int8 artifacts,
    whose drift is expected, by the rank agreement pooled over every validation pair.
    """

    max_abs_diff_unpadded: float | None = None
    max_abs_diff_padded: float | None = None
    min_spearman_pooled: float | None = None
    min_spearman_case: float | None = None  # only in records written before pooling was introduced

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tolerances:
        """Read both the current form and the older ``{"unpadded", "padded"}`` / ``{"spearman_pooled"}`` one."""
        if not isinstance(data, dict):
            raise ArtifactError(f"manifest validation.tolerance must be an object, got {type(data).__name__}")

        def get(*keys: str) -> float | None:
            for key in keys:
                if data.get(key) is not None:
                    return float(data[key])
            return None

        return cls(
            max_abs_diff_unpadded=get("max_abs_diff_unpadded", "unpadded"),
            max_abs_diff_padded=get("max_abs_diff_padded", "padded"),
            min_spearman_pooled=get("min_spearman_pooled", "spearman_pooled"),
            min_spearman_case=get("min_spearman_case", "spearman_min"),
        )


@dataclass(frozen=True)
class CaseRecord:
    """One validation case: how the artifact's scores for its pairs compared with the reference's."""

    case: str
    pairs: int
    token_ids_equal: bool
    max_abs_diff_unpadded: float
    max_abs_diff_padded: float
    spearman: float
    top1_agrees: bool
    non_finite: list[int] = field(default_factory=list)  # documents whose score was NaN or inf

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("max_abs_diff_unpadded", "max_abs_diff_padded", "spearman"):
            data[key] = _json_num(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseRecord:
        return cls(
            case=str(data.get("case", "")), pairs=int(data.get("pairs", 0)),
            token_ids_equal=bool(data.get("token_ids_equal", False)),
            max_abs_diff_unpadded=_num(data.get("max_abs_diff_unpadded")),
            max_abs_diff_padded=_num(data.get("max_abs_diff_padded")),
            spearman=_num(data.get("spearman")), top1_agrees=bool(data.get("top1_agrees", False)),
            non_finite=[int(i) for i in data.get("non_finite") or []],
        )


@dataclass(frozen=True)
class ValidationRecord:
    """The export-time comparison of an artifact with the reference library, and its verdict.

    It carries the tolerances it was judged by and which statistic decided (``decided_by``), so
    every printout (``mxbai-onnx info``/``validate``, ``ExportError``) shows what the verdict used,
    not a statistic that was only recorded. ``failures`` says in words why a verdict failed.

    Examples:
        >>> record = ValidationRecord.skipped_record()
        >>> record.passed, record.summary()
        (False, 'skipped (exported with --no-validate); run `mxbai-onnx validate`')
    """

    passed: bool
    skipped: bool = False
    reference: str = ""
    reference_dtype: str = "fp32"
    scored_with: str = ""
    max_length: int | None = None
    pairs: int = 0
    token_ids_equal: bool = False
    all_finite: bool = True
    max_abs_diff_unpadded: float = float("nan")
    max_abs_diff_padded: float = float("nan")
    spearman_min: float = float("nan")
    spearman_pooled: float = float("nan")
    top1_agreement: float = float("nan")
    decided_by: DecidedBy | None = None
    tolerance: Tolerances = field(default_factory=Tolerances)
    failures: list[str] = field(default_factory=list)
    cases: list[CaseRecord] = field(default_factory=list)

    @classmethod
    def skipped_record(cls) -> ValidationRecord:
        """The record of an export made with ``validate=False``: not validated, so not passed."""
        return cls(passed=False, skipped=True)

    # -- JSON ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": True, "passed": False}
        data: dict[str, Any] = {
            "passed": self.passed, "reference": self.reference, "reference_dtype": self.reference_dtype,
            "scored_with": self.scored_with, "max_length": self.max_length, "pairs": self.pairs,
            "token_ids_equal": self.token_ids_equal, "all_finite": self.all_finite,
        }
        for key in ("max_abs_diff_unpadded", "max_abs_diff_padded", "spearman_min", "spearman_pooled",
                    "top1_agreement"):
            data[key] = _json_num(getattr(self, key))
        data.update(decided_by=self.decided_by, tolerance=self.tolerance.to_dict(), failures=list(self.failures),
                    cases=[c.to_dict() for c in self.cases])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationRecord | None:
        """Read a manifest's ``validation`` object, current or older form; None when it is empty."""
        if not isinstance(data, dict):
            raise ArtifactError(f"manifest validation must be an object, got {type(data).__name__}")
        if not data:
            return None
        if data.get("skipped"):
            return cls.skipped_record()
        tolerance = Tolerances.from_dict(data.get("tolerance") or {})
        decided_by = data.get("decided_by")
        if decided_by is None:  # older records: the tolerance names the statistic that was judged
            if tolerance.max_abs_diff_unpadded is not None:
                decided_by = "max_abs_diff"
            elif tolerance.min_spearman_pooled is not None:
                decided_by = "spearman_pooled"
            elif tolerance.min_spearman_case is not None:
                decided_by = "spearman_min"
        if decided_by not in (None, "max_abs_diff", "spearman_pooled", "spearman_min"):
            raise ArtifactError(f"manifest validation.decided_by {decided_by!r} is unknown")
        max_length = data.get("max_length")
        return cls(
            passed=bool(data.get("passed", False)), reference=str(data.get("reference", "")),
            reference_dtype=str(data.get("reference_dtype", "fp32")), scored_with=str(data.get("scored_with", "")),
            max_length=None if max_length is None else int(max_length), pairs=int(data.get("pairs", 0)),
            token_ids_equal=bool(data.get("token_ids_equal", False)), all_finite=bool(data.get("all_finite", True)),
            max_abs_diff_unpadded=_num(data.get("max_abs_diff_unpadded")),
            max_abs_diff_padded=_num(data.get("max_abs_diff_padded")),
            spearman_min=_num(data.get("spearman_min")), spearman_pooled=_num(data.get("spearman_pooled")),
            top1_agreement=_num(data.get("top1_agreement")), decided_by=decided_by, tolerance=tolerance,
            failures=[str(f) for f in data.get("failures") or []],
            cases=[CaseRecord.from_dict(c) for c in data.get("cases") or []],
        )

    # -- formatting ---------------------------------------------------------------------------------
    def verdict_text(self) -> str:
        """The statistics the verdict was judged by, with their limits (what ``summary`` leads with)."""
        tol = self.tolerance
        checks = []
        if self.decided_by == "max_abs_diff":
            checks.append(f"max abs diff {format_stat(self.max_abs_diff_unpadded, '.3g')} unpadded "
                          f"(<= {format_stat(_num(tol.max_abs_diff_unpadded), 'g')}), "
                          f"{format_stat(self.max_abs_diff_padded, '.3g')} padded "
                          f"(<= {format_stat(_num(tol.max_abs_diff_padded), 'g')}), "
                          f"top-1 agreement {format_stat(self.top1_agreement, '.0%')} (100% required)")
        elif self.decided_by == "spearman_pooled":
            checks.append(f"pooled Spearman {format_stat(self.spearman_pooled, '.4f')} over {self.pairs} pairs "
                          f"(>= {format_stat(_num(tol.min_spearman_pooled), 'g')} required)")
        elif self.decided_by == "spearman_min":
            checks.append(f"Spearman min {format_stat(self.spearman_min, '.4f')} "
                          f"(>= {format_stat(_num(tol.min_spearman_case), 'g')} required)")
        checks.append(f"token ids equal: {'yes' if self.token_ids_equal else 'NO'}")
        checks.append(f"scores finite: {'yes' if self.all_finite else 'NO'}")
        return ", ".join(checks)

    def summary(self) -> str:
        """One line: verdict, reference, the statistics that decided it, and why it failed."""
        if self.skipped:
            return "skipped (exported with --no-validate); run `mxbai-onnx validate`"
        text = f"{'passed' if self.passed else 'FAILED'} against {self.reference or '?'}: {self.verdict_text()}"
        if self.failures:
            text += "; failed because " + "; ".join(self.failures)
        return text
