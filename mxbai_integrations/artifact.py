"""The artifact contract: a directory with ``model.onnx``, ``tokenizer.json`` and ``mxbai_onnx.json``.

The exporter writes this manifest and the run time reads it; nothing else passes between them.
Everything the run time needs (prompt token ids, budgets, score normalisation, checksums) lives
here, so serving needs neither transformers nor network access.

A manifest is data from wherever the artifact came from, so every field is checked when it is
read (type, choice, range, and agreement between fields), and what it claims about the graph
(family, attention, padding) is checked against the graph itself (:func:`check_graph`); anything
that does not hold is one :class:`ArtifactError` naming the field, never a wrong score.

Why one module of ~480 lines: the artifact contract is read as one piece (DESIGN.md), the records
and the checks that guard them side by side; the validation record has its own module.

Examples:
    >>> manifest = read_manifest("mxbai-rerank-base-v2-onnx")  # doctest: +SKIP
    >>> manifest.family, manifest.dtype, manifest.source.model_id  # doctest: +SKIP
    ('v2', 'fp32', 'mixedbread-ai/mxbai-rerank-base-v2')
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from mxbai_integrations.errors import ArtifactError, ArtifactFileMissingError, ModelNotFoundError
from mxbai_integrations.graph import graph_ops
from mxbai_integrations.validation_record import CaseRecord, DecidedBy, Tolerances, ValidationRecord

__all__ = [
    "CPU_DTYPES", "DTYPES", "FAMILIES", "FORMAT_VERSION", "MANIFEST_NAME", "MODEL_NAME", "TOKENIZER_NAME",
    "ArtifactError", "CaseRecord", "DecidedBy", "FileRecord", "Manifest", "PromptSpec", "ScoreSpec", "SourceInfo",
    "Tolerances", "ValidationRecord", "check_file_name", "check_graph", "file_record", "graph_family",
    "is_artifact_dir", "read_manifest", "sha256_file", "verify_files", "write_manifest",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "mxbai_onnx.json"
MODEL_NAME = "model.onnx"
EXTERNAL_DATA_NAME = "model.onnx.data"
TOKENIZER_NAME = "tokenizer.json"

Family = Literal["v1", "v2"]
DType = Literal["fp32", "fp16", "int8", "int4"]
FAMILIES = ("v1", "v2")
DTYPES = ("fp32", "fp16", "int8", "int4")
# Reduced-precision CPU graphs: "auto" never offers them to a GPU provider.
CPU_DTYPES = ("int8", "int4")
PADDING_SIDES = ("left", "right")
ACTIVATIONS = {"v1": "sigmoid", "v2": "identity"}
GQA_OP = ("com.microsoft", "GroupQueryAttention")
# Bounds that no real model comes near; past them a value is a typo or tampering.
_MAX_TOKENS = 1 << 20
_MAX_TOKEN_ID = (1 << 31) - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


# -- field checks --------------------------------------------------------------------------------------
def _fail(where: str, what: str, value: Any) -> ArtifactError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return ArtifactError(f"manifest {where} must be {what}, got {shown}")


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(where, f"an integer in [{lo}, {hi}]", value)
    return value


def _opt_int(value: Any, where: str, lo: int, hi: int) -> int | None:
    return None if value is None else _int(value, where, lo, hi)


def _str(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise _fail(where, "a string" if empty else "a non-empty string", value)
    return value


def _opt_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise _fail(where, f"one of {choices}", value)
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "an object", value)
    return dict(value)


def _ids(value: Any, where: str) -> list[int]:
    if not isinstance(value, list):
        raise _fail(where, "a list of token ids", value)
    return [_int(v, f"{where}[{i}]", 0, _MAX_TOKEN_ID) for i, v in enumerate(value)]


def _template(value: Any, where: str, name: str) -> str:
    """A prompt template with exactly one plain ``{name}`` field (no attribute access or format spec)."""
    text = _str(value, where)
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError:
        raise _fail(where, f"a template with one '{{{name}}}' field", value) from None
    if parsed != [(name, "", None)]:
        raise _fail(where, f"a template with exactly one plain '{{{name}}}' field", value)
    return text


# -- records -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceInfo:
    """Where the artifact came from: the checkpoint and the shape the exporter read from its config."""

    model_id: str | None = None
    path: str | None = None
    revision: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    max_position_embeddings: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> SourceInfo:
        data = _obj(data, "source")
        ints = {"hidden_size", "num_hidden_layers", "max_position_embeddings"}
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            values[f.name] = (_opt_int(value, f"source.{f.name}", 1, _MAX_TOKENS) if f.name in ints
                              else _opt_str(value, f"source.{f.name}"))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    @classmethod
    def from_dict(cls, data: Any) -> PromptSpec:
        data = _obj(data, "prompt")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArtifactError(f"manifest prompt has unknown field(s) {unknown}")
        spec = cls(
            prefix_ids=_ids(data.get("prefix_ids"), "prompt.prefix_ids"),
            sep_ids=_ids(data.get("sep_ids"), "prompt.sep_ids"),
            task_ids=_ids(data.get("task_ids"), "prompt.task_ids"),
            suffix_ids=_ids(data.get("suffix_ids"), "prompt.suffix_ids"),
            sep=_str(data.get("sep", "\n"), "prompt.sep"),
            query_template=_template(data.get("query_template", cls.query_template), "prompt.query_template",
                                     "query"),
            instruction_template=_template(data.get("instruction_template", cls.instruction_template),
                                           "prompt.instruction_template", "instruction"),
            document_template=_template(data.get("document_template", cls.document_template),
                                        "prompt.document_template", "document"),
            query_budget_num=_int(data.get("query_budget_num", 3), "prompt.query_budget_num", 1, 1000),
            query_budget_den=_int(data.get("query_budget_den", 4), "prompt.query_budget_den", 1, 1000),
            model_max_length=_int(data.get("model_max_length", 32768), "prompt.model_max_length", 1, _MAX_TOKENS),
        )
        if spec.query_budget_num > spec.query_budget_den:
            raise _fail("prompt.query_budget_num", f"at most query_budget_den ({spec.query_budget_den})",
                        spec.query_budget_num)
        if spec.model_max_length <= spec.predefined_length:
            raise _fail("prompt.model_max_length", f"more than the {spec.predefined_length} template tokens",
                        spec.model_max_length)
        return spec


@dataclass(frozen=True)
class ScoreSpec:
    """How the graph's ``score`` output becomes the user-facing score.

    v1: the graph emits the classifier logit; the reference returns sigmoid(logit).
    v2: the graph emits logit("1") - logit("0"); raw by default, sigmoid(x - shift) when normalised.
    """

    activation: Literal["sigmoid", "identity"]
    normalize_shift: float | None = None
    token_ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, family: str) -> ScoreSpec:
        data = _obj(data, "score")
        unknown = sorted(set(data) - {"activation", "normalize_shift", "token_ids"})
        if unknown:
            raise ArtifactError(f"manifest score has unknown field(s) {unknown}")
        activation = _choice(data.get("activation"), "score.activation", (ACTIVATIONS[family],))
        shift = data.get("normalize_shift")
        if shift is not None and (isinstance(shift, bool) or not isinstance(shift, (int, float))
                                  or not math.isfinite(shift) or abs(shift) > 1e4):
            raise _fail("score.normalize_shift", "a finite number or null", shift)
        token_ids = _obj(data.get("token_ids") or {}, "score.token_ids")
        for name, value in token_ids.items():
            _int(value, f"score.token_ids[{name!r}]", 0, _MAX_TOKEN_ID)
        return cls(activation=activation, normalize_shift=None if shift is None else float(shift),
                   token_ids=token_ids)


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    bytes: int

    @classmethod
    def from_dict(cls, data: Any, name: str) -> FileRecord:
        data = _obj(data, f"files[{name!r}]")
        digest = data.get("sha256")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _fail(f"files[{name!r}].sha256", "64 lowercase hex digits", digest)
        return cls(sha256=digest, bytes=_int(data.get("bytes"), f"files[{name!r}].bytes", 0, 1 << 50))


@dataclass(frozen=True)
class Manifest:
    family: Family
    dtype: DType
    source: SourceInfo
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
    # Provenance (library versions, exporter): shown to people, never used to decide validity.
    created_with: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # The exporter builds manifests from plain dicts; read them into the typed records.
        if isinstance(self.validation, dict):
            object.__setattr__(self, "validation", ValidationRecord.from_dict(self.validation))
        if isinstance(self.source, Mapping):
            object.__setattr__(self, "source", SourceInfo.from_dict(self.source))

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
        data["source"] = self.source.to_dict()
        data["validation"] = self.validation.to_dict() if self.validation is not None else {}
        data["format_version"] = self.format_version
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Read and check every field; one ArtifactError naming the first field that is wrong."""
        version = data.get("format_version")
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise ArtifactError(
                f"manifest format_version {version!r} is not supported: this mxbai_integrations reads "
                f"format_version {FORMAT_VERSION}. Re-export the model with the matching onnx_export, "
                "or install the mxbai_integrations version that wrote it."
            )
        try:
            return cls._checked(data, version)
        except ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"manifest is malformed: {exc!r}") from exc

    @classmethod
    def _checked(cls, data: dict[str, Any], version: int) -> Manifest:
        family = _choice(data.get("family"), "family", FAMILIES)
        dtype = _choice(data.get("dtype"), "dtype", DTYPES)
        source = SourceInfo.from_dict(data.get("source") or {})
        padding_side = _choice(data.get("padding_side"), "padding_side", PADDING_SIDES)
        if family == "v1" and padding_side != "right":
            # DeBERTa's relative positions count from the first token: left padding moves every score.
            raise _fail("padding_side", "'right' for a v1 (DeBERTa) artifact", padding_side)
        prompt = None
        if family == "v2":
            if not data.get("prompt"):
                raise ArtifactError("manifest of a v2 artifact has no 'prompt' section")
            prompt = PromptSpec.from_dict(data["prompt"])
            if source.max_position_embeddings is not None and prompt.model_max_length > source.max_position_embeddings:
                raise _fail("prompt.model_max_length",
                            f"at most the model's {source.max_position_embeddings} positions (source)",
                            prompt.model_max_length)
        elif data.get("prompt"):
            raise ArtifactError("manifest of a v1 artifact must not have a 'prompt' section")
        files_data = _obj(data.get("files"), "files")
        files = {check_file_name(name): FileRecord.from_dict(rec, name) for name, rec in files_data.items()}
        for required in (MODEL_NAME, TOKENIZER_NAME):
            if required not in files:
                raise ArtifactError(f"manifest files does not list {required!r} (it lists {sorted(files)})")
        inputs, outputs = data.get("inputs"), data.get("outputs")
        if (not isinstance(inputs, list) or len(inputs) != 2 or len(set(inputs)) != 2
                or not all(isinstance(n, str) and n for n in inputs)):
            raise ArtifactError(f"manifest inputs must name the token ids and attention mask inputs "
                                f"(two distinct names), got {inputs!r}")
        if not isinstance(outputs, list) or not outputs or not all(isinstance(n, str) and n for n in outputs):
            raise ArtifactError(f"manifest outputs must name the score output, got {outputs!r}")
        created_with = _obj(data.get("created_with") or {}, "created_with")
        for key, value in created_with.items():
            _str(value, f"created_with[{key!r}]")
        return cls(
            family=family,
            dtype=dtype,
            source=source,
            opset=_int(data.get("opset"), "opset", 1, 1000),
            max_length=_int(data.get("max_length"), "max_length", 1, _MAX_TOKENS),
            pad_token_id=_int(data.get("pad_token_id"), "pad_token_id", 0, _MAX_TOKEN_ID),
            padding_side=padding_side,
            score=ScoreSpec.from_dict(data.get("score"), family),
            files=files,
            inputs=list(inputs),
            outputs=list(outputs),
            prompt=prompt,
            validation=ValidationRecord.from_dict(data.get("validation") or {}),
            created_with=created_with,
            format_version=version,
        )


# -- files -----------------------------------------------------------------------------------------------
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
        what = "is a file, not an artifact directory" if directory.exists() else "does not exist"
        raise ModelNotFoundError(f"model: artifact directory {str(directory)!r} {what}")
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelNotFoundError(
            f"model: {str(directory)!r} is not an mxbai ONNX artifact (no {MANIFEST_NAME}); "
            "export one with `mxbai-onnx export SOURCE OUT_DIR`"
        )
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"model: {manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"model: {manifest_path} must hold a JSON object")
    return Manifest.from_dict(data)


def write_manifest(artifact_dir: str | Path, manifest: Manifest) -> Path:
    path = Path(artifact_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def _check_inside(path: Path, root: Path, name: str) -> None:
    """A file (or the link it is) must resolve inside ``root``: a link to /etc/passwd is not a tokenizer."""
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise ArtifactError(f"model: artifact file {name!r} is a link to {str(real)!r}, outside the artifact "
                            f"directory {str(root)!r}; copy the file in instead")


def verify_files(artifact_dir: str | Path, manifest: Manifest, *, checksums: bool = True,
                 allowed_root: str | os.PathLike[str] | None = None) -> None:
    """Check every file the manifest lists: inside the directory, present, same size and (optionally) sha256.

    Args:
        artifact_dir: the artifact directory.
        manifest: its manifest.
        checksums: also compare sha256 (reads every byte once).
        allowed_root: where links may point (default: the artifact directory itself). A Hugging
            Face cache snapshot links into its repository's ``blobs/``, so the hub loader passes
            the repository's cache folder.
    """
    directory = Path(artifact_dir)
    root = Path(os.path.realpath(allowed_root if allowed_root is not None else directory))
    if (directory / MANIFEST_NAME).is_file():
        _check_inside(directory / MANIFEST_NAME, root, MANIFEST_NAME)
    for name, record in manifest.files.items():
        path = directory / check_file_name(name)
        if not path.is_file():
            raise ArtifactFileMissingError(f"model: artifact file {name!r} is missing from {str(directory)!r}")
        _check_inside(path, root, name)
        size = path.stat().st_size
        if size != record.bytes:
            raise ArtifactError(
                f"model: artifact file {name!r} is corrupt: {size} bytes, manifest says {record.bytes}"
            )
        if checksums and sha256_file(path) != record.sha256:
            raise ArtifactError(f"model: artifact file {name!r} is corrupt: sha256 does not match the manifest")


# -- the graph against its manifest ------------------------------------------------------------------------
def graph_family(ops: Mapping[tuple[str, str], int]) -> Family:
    """v1 (DeBERTa: LayerNormalization) or v2 (Qwen2: RMSNorm, no LayerNormalization), from the graph's ops."""
    return "v1" if ops.get(("", "LayerNormalization")) else "v2"


def check_graph(artifact_dir: str | Path, manifest: Manifest) -> None:
    """The manifest's family and padding side must fit the graph itself, not a provenance note.

    GroupQueryAttention with per-row lengths and no mask is causal attention that is exact only
    for right-padded rows; a v1 graph scored as v2 (or the other way) would be silently wrong.
    """
    ops = graph_ops(Path(artifact_dir) / MODEL_NAME)
    family = graph_family(ops)
    if family != manifest.family:
        raise ArtifactError(f"manifest family is {manifest.family!r} but {MODEL_NAME} is a {family} graph "
                            f"({'no ' if family == 'v2' else ''}LayerNormalization)")
    if ops.get(GQA_OP) and manifest.padding_side != "right":
        raise ArtifactError(f"manifest padding_side must be 'right' for a GroupQueryAttention graph, "
                            f"got {manifest.padding_side!r}")
