"""Exported artifacts cached between benchmark runs, re-exported when they could be stale.

An artifact is reused only when a stamp next to it (``<artifact>.bench.json``) names the same
checkpoint, the same weights file time and the same exporter source (a hash of ``onnx_export/*.py``):
a graph made by other export code is never timed as if it were this code's. The export itself runs
in a child process (it imports torch), through the ``export`` callback the script passes.

Example (in a script)::

    info = ensure_artifact(checkpoint, workdir / "artifacts" / "base-v2-fp32", "fp32",
                           export=lambda spec: run_child(Path(__file__), "export", spec, threads=2))
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.results import pick

ExportFn = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class ExportedArtifact:
    """One artifact a run used: where, whether it was reused, and what its manifest says about it."""

    path: str
    reused: bool
    validated: bool = False
    quantization: str | None = None
    export_s: float | None = None
    validation: dict[str, Any] | None = None
    created_with: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None or k in ("quantization",)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportedArtifact:
        return pick(cls, data)


def exporter_digest() -> str:
    """Hash of the exporter's source files (found without importing it, so torch stays out)."""
    spec = importlib.util.find_spec("onnx_export")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("onnx_export is not installed (pip install -e '.[export]')")
    h = hashlib.sha256()
    for f in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def artifact_stamp(checkpoint: Path) -> dict[str, Any]:
    weights = checkpoint / "model.safetensors"
    return {"checkpoint": str(checkpoint.resolve()), "exporter": exporter_digest(),
            "weights_mtime": weights.stat().st_mtime if weights.exists() else None}


def _stamp_path(artifact: Path) -> Path:
    return artifact.parent / f"{artifact.name}.bench.json"


def is_current(artifact: Path, checkpoint: Path, dtype: str, *, validate: bool) -> bool:
    """True when ``artifact`` was exported by this exporter from this checkpoint in ``dtype``."""
    from mxbai_integrations.artifact import read_manifest

    stamp = _stamp_path(artifact)
    if not (artifact / "mxbai_onnx.json").is_file() or not stamp.is_file():
        return False
    try:
        manifest = read_manifest(artifact)
    except (OSError, ValueError):
        return False
    skipped = manifest.validation is None or manifest.validation.skipped
    return (manifest.dtype == dtype and json.loads(stamp.read_text()) == artifact_stamp(checkpoint)
            and (not validate or not skipped))


def describe(artifact: Path, *, reused: bool, export_s: float | None = None) -> ExportedArtifact:
    """What the artifact's manifest says: validated or not, and how it was quantized."""
    from mxbai_integrations.artifact import read_manifest

    manifest = read_manifest(artifact)
    validation = manifest.validation
    return ExportedArtifact(
        path=str(artifact), reused=reused, export_s=export_s,
        validated=validation is not None and not validation.skipped,
        quantization=manifest.created_with.get("quantization"),
        validation=None if validation is None else validation.to_dict(),
        created_with=dict(manifest.created_with))


def ensure_artifact(checkpoint: Path, artifact: Path, dtype: str, *, export: ExportFn, validate: bool = False,
                    rebuild: bool = False, fused_attention: bool = True) -> ExportedArtifact:
    """Reuse ``artifact`` if it is current, else export it through ``export`` (a child process)."""
    if not rebuild and is_current(artifact, checkpoint, dtype, validate=validate):
        return describe(artifact, reused=True)
    t0 = time.perf_counter()
    done = export({"checkpoint": str(checkpoint), "artifact": str(artifact), "dtype": dtype, "validate": validate,
            "fused_attention": fused_attention})
    _stamp_path(artifact).write_text(json.dumps(artifact_stamp(checkpoint)))
    return describe(artifact, reused=False, export_s=done.get("export_s", time.perf_counter() - t0))


def child_export(spec: dict[str, Any]) -> dict[str, Any]:
    """The export, in a child process: torch is imported here, never in the benchmark's parent."""
    from onnx_export import export_model

    t0 = time.perf_counter()
    export_model(spec["checkpoint"], spec["artifact"], dtype=spec["dtype"], validate=spec["validate"], force=True,
                 progress=False, fused_attention=spec.get("fused_attention", True))
    return {"export_s": time.perf_counter() - t0}
