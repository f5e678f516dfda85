"""From the ``model`` argument to an artifact directory on disk.

An artifact directory is used as is. A hub id (or a local checkpoint directory) maps to a cached
artifact under ``$MXBAI_INTEGRATIONS_CACHE`` (default ``~/.cache/mxbai_integrations``); when it
is not there yet it is exported once through ``onnx_export`` if the ``export`` extra is installed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from mxbai_integrations.artifact import MANIFEST_NAME, ArtifactError, read_manifest

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "mixedbread-ai/mxbai-rerank-base-v2"
MODEL_ENV = "MXBAI_RERANK_MODEL"
CACHE_ENV = "MXBAI_INTEGRATIONS_CACHE"


def default_model() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mxbai_integrations"


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1


def _cache_key(model: str, local: Path | None) -> str:
    if local is not None:
        digest = hashlib.sha256(str(local.resolve()).encode()).hexdigest()[:12]
        return f"local--{local.name}--{digest}"
    return model.replace("/", "--")


def _checked_cached(target: Path, model: str) -> Path:
    """A cached artifact is served only if its validation did not fail.

    A first-use export that the reference refused is still written (its record is the evidence),
    and ``ExportError`` said so; serving it on the next call with only a warning would hand out
    scores known to be wrong. An artifact directory given explicitly by path is the caller's
    choice and still loads (with a warning).
    """
    manifest = read_manifest(target)
    if manifest.failed_validation:
        assert manifest.validation is not None
        raise ArtifactError(
            f"model: the cached artifact for {model!r} at {str(target)!r} failed validation at export "
            f"({str(target / MANIFEST_NAME)!r}: {manifest.validation.summary()}). It is not served from the cache; "
            f"delete {str(target)!r} to export it again on next use, or pass that directory as model to load "
            "it anyway."
        )
    return target


def resolve_artifact(
    model: str | os.PathLike[str] | None, *, dtype: str, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Return an artifact directory for ``model``, exporting it into the cache on first use."""
    if model is None:
        model = default_model()
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path, a hub id or None, got {type(model).__name__}")
    text = os.fspath(model)
    if not text.strip():
        raise ValueError("model must not be an empty string")
    local = Path(text).expanduser()
    if local.is_dir() and (local / MANIFEST_NAME).is_file():
        return local
    if local.is_dir() and not (local / "config.json").is_file():
        raise FileNotFoundError(
            f"model: {text!r} is neither an mxbai ONNX artifact (no {MANIFEST_NAME}) nor a Hugging Face checkpoint"
        )
    if not local.is_dir() and _looks_like_path(text):
        raise FileNotFoundError(f"model: {text!r} does not exist (expected an artifact directory or a hub id)")
    checkpoint = local if local.is_dir() else None
    target = cache_root(cache_dir) / _cache_key(text, checkpoint) / dtype
    if (target / MANIFEST_NAME).is_file():
        return _checked_cached(target, text)
    try:
        from onnx_export import export_model
    except ImportError as exc:
        raise ImportError(
            f"model: {text!r} has no exported artifact in {str(target)!r}. Export it once with "
            f"`mxbai-onnx export {text} {target} --dtype {dtype}`, or install the export extra "
            '(pip install "mxbai-integrations[export]") to export on first use.'
        ) from exc
    logger.info("exporting %s (%s) to %s on first use", text, dtype, target)
    return export_model(str(checkpoint) if checkpoint else text, target, dtype=dtype, force=True)
