"""From the ``model`` argument to an artifact directory on disk, with the manifest read once.

An artifact directory is used as is. A hub id whose repo holds ``mxbai_onnx.json`` (an artifact
repo) is downloaded into the Hugging Face cache and used as is (:mod:`mxbai_integrations.hub`,
extra ``hub``). Any other hub id (or a local checkpoint directory) maps to a cached artifact under
``$MXBAI_INTEGRATIONS_CACHE`` (default ``~/.cache/mxbai_integrations``); when it is not there yet it
is exported once through ``onnx_export`` if the ``export`` extra is installed. This first-use export
hook is the only place where the run time reaches the build-time package.

Examples:
    >>> resolved = resolve_model("./mxbai-rerank-base-v2-onnx", dtype="fp32")  # doctest: +SKIP
    >>> resolved.path, resolved.manifest.family  # doctest: +SKIP
    (PosixPath('mxbai-rerank-base-v2-onnx'), 'v2')
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mxbai_integrations.artifact import MANIFEST_NAME, Manifest, read_manifest
from mxbai_integrations.cache import cache_root
from mxbai_integrations.errors import (
    ArgumentError,
    ArgumentTypeError,
    ArtifactError,
    MissingExtraError,
    ModelNotFoundError,
)
from mxbai_integrations.hub import HUB_INSTALL, hf_cache_repo_root

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "mixedbread-ai/mxbai-rerank-base-v2"
MODEL_ENV = "MXBAI_RERANK_MODEL"
EXPORT_INSTALL = 'pip install "mxbai-integrations[export]"'
# What a first-use export imports; checked before deciding to export, so a run-time-only install
# gets the advice to export once instead of "No module named 'transformers'" from deep inside.
EXPORT_MODULES = ("torch", "transformers", "onnx", "onnxscript")


@dataclass(frozen=True)
class ResolvedModel:
    """An artifact directory and its manifest, read once.

    Attributes:
        path: the artifact directory.
        manifest: its manifest.
        cached: True for an artifact this package exported into its cache on first use.
        allowed_root: where the artifact's files may link to (None: inside ``path`` only).
    """

    path: Path
    manifest: Manifest
    cached: bool = False
    allowed_root: Path | None = None


def default_model() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def looks_like_path(model: str) -> bool:
    """A hub id is ``org/name``; anything starting like a path, or with another number of slashes, is a path."""
    return model.startswith((".", "/", "~")) or model.count("/") != 1


def _cache_key(model: str, local: Path | None, revision: str | None = None) -> str:
    if local is not None:
        digest = hashlib.sha256(str(local.resolve()).encode()).hexdigest()[:12]
        return f"local--{local.name}--{digest}"
    key = model.replace("/", "--")
    return key if revision is None else f"{key}--rev-{hashlib.sha256(revision.encode()).hexdigest()[:12]}"


def missing_export_modules() -> list[str]:
    """The build-time modules a first-use export needs that are not installed."""
    return [name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None]


def _checked_cached(target: Path, model: str) -> Manifest:
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
    return manifest


def _fetch_hub_artifact(model: str, *, revision: str | None) -> ResolvedModel | None:
    """The artifact repo ``model`` from the Hugging Face cache (downloaded if needed), or None.

    None: the repo is a checkpoint (no manifest), or huggingface_hub (extra ``hub``) is not installed.
    Only the files the manifest lists are downloaded, and each file downloaded now is sha256-checked
    here; the scorer checks every file again at load (``verify``), so cached files are hashed once.

    Raises:
        ModelNotFoundError: the repo could not be found (not on the Hub, or offline and not cached).
    """
    from mxbai_integrations.hub import fetch_artifact

    try:
        fetched = fetch_artifact(model, revision=revision, verify=False)
    except MissingExtraError:
        return None
    if fetched is None:
        return None
    return ResolvedModel(fetched.path, fetched.manifest, allowed_root=fetched.allowed_root)


def resolve_model(
    model: str | os.PathLike[str] | None, *, dtype: str, cache_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
) -> ResolvedModel:
    """The artifact for ``model``: a directory as is, a hub artifact repo downloaded, a checkpoint exported.

    Args:
        model: artifact directory, hub id (artifact repo or checkpoint), checkpoint directory, or None.
        dtype: the dtype to export a checkpoint to (an artifact directory or repo has its own).
        cache_dir: where first-use exports go (default ``$MXBAI_INTEGRATIONS_CACHE``).
        revision: the hub revision of an artifact repo, or of a checkpoint to export (default main).

    Raises:
        ModelNotFoundError: a path that does not exist or is neither an artifact nor a checkpoint; a hub
            id that is neither an artifact repo nor a checkpoint we could download.
        MissingExtraError: a checkpoint or hub id with no cached artifact, and no ``export`` extra.
        ArtifactError: the artifact (or the cached export, or the downloaded files) cannot be trusted.
    """
    if model is None:
        model = default_model()
    if not isinstance(model, (str, os.PathLike)):
        raise ArgumentTypeError(f"model must be a path, a hub id or None, got {type(model).__name__}")
    text = os.fspath(model)
    if not text.strip():
        raise ArgumentError("model must not be an empty string")
    local = Path(text).expanduser()
    if local.is_dir() and (local / MANIFEST_NAME).is_file():
        # A Hugging Face cache snapshot links into its repo's blobs/: let the checks follow those links.
        return ResolvedModel(local, read_manifest(local), allowed_root=hf_cache_repo_root(local))
    if local.is_dir() and not (local / "config.json").is_file():
        raise ModelNotFoundError(
            f"model: {text!r} is neither an mxbai ONNX artifact (no {MANIFEST_NAME}) nor a Hugging Face checkpoint"
        )
    if local.exists() and not local.is_dir():
        raise ModelNotFoundError(f"model: {text!r} is a file; expected an artifact directory or a hub id")
    if not local.is_dir() and looks_like_path(text):
        raise ModelNotFoundError(f"model: {text!r} does not exist (expected an artifact directory or a hub id)")
    checkpoint = local if local.is_dir() else None
    target = cache_root(cache_dir) / _cache_key(text, checkpoint, revision) / dtype
    if (target / MANIFEST_NAME).is_file():
        return ResolvedModel(target, _checked_cached(target, text), cached=True)
    not_found: ModelNotFoundError | None = None
    if checkpoint is None:
        try:
            fetched = _fetch_hub_artifact(text, revision=revision)
        except ModelNotFoundError as exc:
            fetched, not_found = None, exc
        if fetched is not None:
            return fetched
    missing = missing_export_modules()
    try:
        if missing:
            raise ImportError(f"{', '.join(missing)} not installed")
        from onnx_export import export_model
    except ImportError as exc:
        hub_note = ""
        if checkpoint is None and importlib.util.find_spec("huggingface_hub") is None:
            hub_note = f" A hub repo that holds an exported artifact needs only the `hub` extra ({HUB_INSTALL})."
        elif not_found is not None:
            hub_note = f" ({not_found})"
        raise MissingExtraError(
            f"model: {text!r} has no exported artifact in {str(target)!r}, and exporting it on first use needs "
            f"the `export` extra ({exc}). Export it once where that extra is installed with "
            f"`mxbai-onnx export {text} {target} --dtype {dtype}` and copy the directory here, or install it "
            f"({EXPORT_INSTALL}) to export on first use.{hub_note}"
        ) from None
    if not_found is not None:
        raise not_found  # with the export extra too: neither an artifact repo nor a checkpoint we can reach
    logger.info("exporting %s (%s) to %s on first use", text, dtype, target)
    path = export_model(str(checkpoint) if checkpoint else text, target, dtype=dtype, force=True,
                        revision=None if checkpoint else revision)
    return ResolvedModel(path, read_manifest(path), cached=True)
