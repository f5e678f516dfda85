"""The artifact contract: a directory with ``model.onnx``, ``tokenizer.json`` and ``mxbai_onnx.json``.

The exporter writes this manifest and the run time reads it; nothing else passes between them.
Everything the run time needs (prompt token ids, budgets, score normalisation, checksums) lives
here, so serving needs neither transformers nor network access.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
    validation: dict[str, Any] = field(default_factory=dict)
    created_with: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def valid(self) -> bool:
        """True when the export-time validation against the reference passed."""
        return bool(self.validation.get("passed", False))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
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
            return cls(
                family=family,
                dtype=dtype,
                source=dict(data["source"]),
                opset=int(data["opset"]),
                max_length=int(data["max_length"]),
                pad_token_id=int(data["pad_token_id"]),
                padding_side=data["padding_side"],
                score=ScoreSpec(**data["score"]),
                files={name: FileRecord(**rec) for name, rec in data["files"].items()},
                inputs=list(data["inputs"]),
                outputs=list(data["outputs"]),
                prompt=prompt,
                validation=dict(data.get("validation", {})),
                created_with=dict(data.get("created_with", {})),
                format_version=version,
            )
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"manifest is malformed: {exc!r}") from exc


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
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"model: artifact file {name!r} is missing from {str(directory)!r}")
        size = path.stat().st_size
        if size != record.bytes:
            raise ArtifactError(
                f"model: artifact file {name!r} is corrupt: {size} bytes, manifest says {record.bytes}"
            )
        if checksums and sha256_file(path) != record.sha256:
            raise ArtifactError(f"model: artifact file {name!r} is corrupt: sha256 does not match the manifest")
