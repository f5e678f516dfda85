"""The artifact contract: a directory with ``model.onnx``, ``tokenizer.json`` and ``mxbai_onnx.json``.

The exporter writes this manifest and the run time reads it; nothing else passes between them.
Everything the run time needs (prompt token ids, budgets, score normalisation, checksums) lives
here, so serving needs neither transformers nor network access.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

FORMAT_VERSION = 1
MANIFEST_NAME = "mxbai_onnx.json"
MODEL_NAME = "model.onnx"
EXTERNAL_DATA_NAME = "model.onnx.data"
TOKENIZER_NAME = "tokenizer.json"

Family = Literal["v1", "v2"]
DType = Literal["fp32", "fp16", "int8"]
FAMILIES = ("v1", "v2")
DTYPES = ("fp32", "fp16", "int8")
PADDING_SIDES = ("left", "right")
# What decided a validation verdict: fp32 by score differences, fp16/int8 by the pooled rank agreement.
# "spearman_min" only appears in manifests written before the pooled statistic was introduced.
DecidedBy = Literal["max_abs_diff", "spearman_pooled", "spearman_min"]


class ArtifactError(ValueError):
    """An artifact directory is missing, corrupt, or written by an unknown format version."""


@dataclass(frozen=True)
class PromptSpec:
    """The v2 prompt of mxbai-rerank 0.1.6, pre-tokenized with the checkpoint's own tokenizer.

    Text pieces (query, instruction, document) are tokenized at run time with these templates;
    the fixed pieces are stored as token ids so the run time never re-tokenizes them.
    """

    prefix_ids: list[int]
    sep_ids: list[int]
    task_ids: list[int]
    suffix_ids: list[int]
    sep: str = "\n"
    query_template: str = "query: {query}"
    instruction_template: str = "instruction: {instruction}"
    document_template: str = "document: {document}"
    # The query part is capped at max_length * num // den tokens (3/4 in mxbai-rerank 0.1.6).
    query_budget_num: int = 3
    query_budget_den: int = 4
    # mxbai-rerank uses the config's max_position_embeddings as the hard model limit.
    model_max_length: int = 32768

    @property
    def predefined_length(self) -> int:
        """Tokens the fixed template adds around every (query, document) pair."""
        return len(self.prefix_ids) + len(self.task_ids) + len(self.suffix_ids) + len(self.sep_ids)


@dataclass(frozen=True)
class ScoreSpec:
    """How the graph's ``score`` output becomes the user-facing score.

    v1: the graph emits the classifier logit; the reference returns sigmoid(logit).
    v2: the graph emits logit("1") - logit("0"); raw by default, sigmoid(x - shift) when normalised.
    """

    activation: Literal["sigmoid", "identity"]
    normalize_shift: float | None = None
    token_ids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    bytes: int


def _num(value: Any) -> float:
    """A JSON number, or NaN for a missing/null one (a record from an older or failed validation)."""
    return float("nan") if value is None else float(value)


def _json_num(value: float) -> float | None:
    """Non-finite numbers are written as null: ``NaN``/``Infinity`` are not JSON."""
    return value if math.isfinite(value) else None


def _fmt(value: float, spec: str) -> str:
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
            checks.append(f"max abs diff {_fmt(self.max_abs_diff_unpadded, '.3g')} unpadded "
                          f"(<= {_fmt(_num(tol.max_abs_diff_unpadded), 'g')}), "
                          f"{_fmt(self.max_abs_diff_padded, '.3g')} padded "
                          f"(<= {_fmt(_num(tol.max_abs_diff_padded), 'g')}), "
                          f"top-1 agreement {_fmt(self.top1_agreement, '.0%')} (100% required)")
        elif self.decided_by == "spearman_pooled":
            checks.append(f"pooled Spearman {_fmt(self.spearman_pooled, '.4f')} over {self.pairs} pairs "
                          f"(>= {_fmt(_num(tol.min_spearman_pooled), 'g')} required)")
        elif self.decided_by == "spearman_min":
            checks.append(f"Spearman min {_fmt(self.spearman_min, '.4f')} "
                          f"(>= {_fmt(_num(tol.min_spearman_case), 'g')} required)")
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

    def lines(self, *, cases: bool = True) -> list[str]:
        """The block ``mxbai-onnx info`` and ``validate`` print: verdict first, recorded drift after."""
        label = "validation    "
        pad = " " * len(label)
        if self.skipped:
            return [label + self.summary()]
        where = f" in {self.reference_dtype}"
        if self.max_length is not None:
            where += f" at max_length {self.max_length}"
        lines = [f"{label}{'passed' if self.passed else 'FAILED'} against {self.reference or '?'}{where}"]
        if self.scored_with:
            lines.append(f"{pad}scored through {self.scored_with}, {self.pairs} pairs")
        lines.append(f"{pad}verdict by {self.verdict_text()}")
        recorded = []
        if self.decided_by != "max_abs_diff":
            recorded.append(f"max abs diff {_fmt(self.max_abs_diff_unpadded, '.3g')} unpadded, "
                            f"{_fmt(self.max_abs_diff_padded, '.3g')} padded")
        if self.decided_by != "spearman_pooled":
            recorded.append(f"pooled Spearman {_fmt(self.spearman_pooled, '.4f')}")
        if self.decided_by != "spearman_min":
            recorded.append(f"per-case Spearman min {_fmt(self.spearman_min, '.4f')}")
        if self.decided_by != "max_abs_diff":
            recorded.append(f"top-1 agreement {_fmt(self.top1_agreement, '.0%')}")
        lines.append(f"{pad}recorded, not judged: {', '.join(recorded)}")
        for failure in self.failures:
            lines.append(f"{pad}failed: {failure}")
        if cases and self.cases:
            w = max(len("case"), *(len(c.case) for c in self.cases))
            lines.append(f"  {'case':<{w}}  pairs  ids  max|diff| unpadded  padded    Spearman  top-1")
            for c in self.cases:
                lines.append(
                    f"  {c.case:<{w}}  {c.pairs:>5}  {'yes' if c.token_ids_equal else 'NO':>3}"
                    f"  {_fmt(c.max_abs_diff_unpadded, '>18.3g')}  {_fmt(c.max_abs_diff_padded, '<8.3g')}  "
                    f"{_fmt(c.spearman, '>8.4f')}  {'yes' if c.top1_agrees else 'NO':>5}"
                    + (f"  non-finite: documents {c.non_finite}" if c.non_finite else "")
                )
        return lines


@dataclass(frozen=True)
class Manifest:
    family: Family
    dtype: DType
    source: dict[str, Any]
    opset: int
    max_length: int
    pad_token_id: int
    padding_side: Literal["left", "right"]
    score: ScoreSpec
    files: dict[str, FileRecord]
    inputs: list[str] = field(default_factory=lambda: ["input_ids", "attention_mask"])
    outputs: list[str] = field(default_factory=lambda: ["score"])
    prompt: PromptSpec | None = None
    # None: no validation recorded. A dict (the JSON form) is accepted and read into the record.
    validation: ValidationRecord | None = None
    created_with: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.validation, dict):
            object.__setattr__(self, "validation", ValidationRecord.from_dict(self.validation))

    @property
    def valid(self) -> bool:
        """True when the export-time validation against the reference passed."""
        return self.validation is not None and self.validation.passed

    @property
    def failed_validation(self) -> bool:
        """True when a validation ran and refused the artifact (not when it was skipped or never run)."""
        return self.validation is not None and not self.validation.skipped and not self.validation.passed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["validation"] = self.validation.to_dict() if self.validation is not None else {}
        data["format_version"] = self.format_version
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"manifest format_version {version!r} is not supported: this mxbai_integrations reads "
                f"format_version {FORMAT_VERSION}. Re-export the model with the matching onnx_export, "
                "or install the mxbai_integrations version that wrote it."
            )
        try:
            family = data["family"]
            if family not in FAMILIES:
                raise ArtifactError(f"manifest family must be one of {FAMILIES}, got {family!r}")
            dtype = data["dtype"]
            if dtype not in DTYPES:
                raise ArtifactError(f"manifest dtype must be one of {DTYPES}, got {dtype!r}")
            prompt = PromptSpec(**data["prompt"]) if data.get("prompt") else None
            if family == "v2" and prompt is None:
                raise ArtifactError("manifest of a v2 artifact has no 'prompt' section")
            padding_side = data["padding_side"]
            if padding_side not in PADDING_SIDES:
                raise ArtifactError(f"manifest padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
            created_with = dict(data.get("created_with", {}))
            if created_with.get("attention") == "GroupQueryAttention" and padding_side != "right":
                # Causal GroupQueryAttention with per-row lengths is exact only for right-padded rows.
                raise ArtifactError(f"manifest padding_side must be 'right' for a GroupQueryAttention graph, "
                                    f"got {padding_side!r}")
            files = data["files"]
            if not isinstance(files, dict):
                raise ArtifactError(f"manifest files must be an object, got {type(files).__name__}")
            for name in files:
                check_file_name(name)
            if MODEL_NAME not in files:
                raise ArtifactError(f"manifest files does not list {MODEL_NAME!r} (it lists {sorted(files)})")
            inputs, outputs = data["inputs"], data["outputs"]
            if (not isinstance(inputs, list) or len(inputs) != 2 or len(set(inputs)) != 2
                    or not all(isinstance(n, str) and n for n in inputs)):
                raise ArtifactError(f"manifest inputs must name the token ids and attention mask inputs "
                                    f"(two distinct names), got {inputs!r}")
            if not isinstance(outputs, list) or not outputs or not all(isinstance(n, str) and n for n in outputs):
                raise ArtifactError(f"manifest outputs must name the score output, got {outputs!r}")
            return cls(
                family=family,
                dtype=dtype,
                source=dict(data["source"]),
                opset=int(data["opset"]),
                max_length=int(data["max_length"]),
                pad_token_id=int(data["pad_token_id"]),
                padding_side=padding_side,
                score=ScoreSpec(**data["score"]),
                files={name: FileRecord(**rec) for name, rec in files.items()},
                inputs=list(inputs),
                outputs=list(outputs),
                prompt=prompt,
                validation=ValidationRecord.from_dict(data.get("validation") or {}),
                created_with=created_with,
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"manifest is malformed: {exc!r}") from exc


def check_file_name(name: Any) -> str:
    """A manifest's file name must be a plain name inside the artifact directory.

    The manifest is data from wherever the artifact came from: a name with ``..``, a separator or
    an absolute path would make the run time read (and checksum) files outside the directory.
    """
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise ArtifactError(f"manifest files: {name!r} is not a file name")
    if ("/" in name or "\\" in name or ".." in name or "\x00" in name or PurePosixPath(name).is_absolute()
            or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive):
        raise ArtifactError(f"manifest files: {name!r} must be a plain file name inside the artifact directory "
                            "(no '..', path separators or absolute paths)")
    return name


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> FileRecord:
    return FileRecord(sha256=sha256_file(path), bytes=path.stat().st_size)


def is_artifact_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def read_manifest(artifact_dir: str | Path) -> Manifest:
    """Read and check the manifest; raise FileNotFoundError/ArtifactError naming what is wrong."""
    directory = Path(artifact_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"model: artifact directory {str(directory)!r} does not exist")
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"model: {str(directory)!r} is not an mxbai ONNX artifact (no {MANIFEST_NAME}); "
            "export one with `mxbai-onnx export SOURCE OUT_DIR`"
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"model: {manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"model: {manifest_path} must hold a JSON object")
    return Manifest.from_dict(data)


def write_manifest(artifact_dir: str | Path, manifest: Manifest) -> Path:
    path = Path(artifact_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def verify_files(artifact_dir: str | Path, manifest: Manifest, *, checksums: bool = True) -> None:
    """Check every file the manifest lists: present, same size and (optionally) same sha256."""
    directory = Path(artifact_dir)
    for name, record in manifest.files.items():
        path = directory / check_file_name(name)
        if not path.is_file():
            raise FileNotFoundError(f"model: artifact file {name!r} is missing from {str(directory)!r}")
        size = path.stat().st_size
        if size != record.bytes:
            raise ArtifactError(
                f"model: artifact file {name!r} is corrupt: {size} bytes, manifest says {record.bytes}"
            )
        if checksums and sha256_file(path) != record.sha256:
            raise ArtifactError(f"model: artifact file {name!r} is corrupt: sha256 does not match the manifest")
