"""Artifacts as Hugging Face Hub repositories: fetch one by repo id, push one with a model card.

An artifact directory is self-describing (``mxbai_onnx.json`` lists every file with its sha256),
so a hub repository that holds one can be used with nothing but the run time installed, the way
fastembed and transformers.js users fetch ready ONNX files: :func:`fetch_artifact` reads the
manifest first, then downloads exactly the files it lists into the standard Hugging Face cache
(revision pinning, ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``/``HF_HOME`` all as huggingface_hub does),
and checks them against the manifest. A repo without a manifest is a source checkpoint: the
caller exports it on first use, as for any hub id. :func:`push_artifact` uploads an artifact
directory, after checking its own checksums, with a model card written from its manifest.

Why one module of ~630 lines: fetch and push share the cache layout, the manifest's file list and
its checks, and the model card is written from the same records; split, each half would import
the other's private helpers.

``huggingface_hub`` is the only extra this needs (extra ``hub``); it is imported inside the
functions that use it, and this module never imports torch, transformers or ``onnx_export``.

Examples:
    >>> from mxbai_integrations.hub import fetch_artifact, push_artifact
    >>> artifact = fetch_artifact("my-org/mxbai-rerank-base-v2-onnx")  # doctest: +SKIP
    >>> artifact.path, artifact.commit_hash[:7], artifact.manifest.family  # doctest: +SKIP
    (PosixPath('~/.cache/huggingface/hub/models--my-org--mxbai-rerank-base-v2-onnx/snapshots/3f1c...'), '3f1c2a9', 'v2')
    >>> push_artifact("./mxbai-rerank-base-v2-onnx", "my-org/mxbai-rerank-base-v2-onnx")  # doctest: +SKIP
    'https://huggingface.co/my-org/mxbai-rerank-base-v2-onnx/commit/3f1c2a9...'
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from mxbai_integrations.artifact import (
    MANIFEST_NAME,
    Manifest,
    check_graph,
    read_manifest,
    verify_files,
)
from mxbai_integrations.checks import check_bool
from mxbai_integrations.errors import (
    ArgumentError,
    ArgumentTypeError,
    ArtifactError,
    MissingExtraError,
    ModelNotFoundError,
)
from mxbai_integrations.validation_record import format_stat

__all__ = [
    "CARD_NAME", "CARD_TAGS", "HUB_INSTALL", "HubArtifact", "card_license", "export_command", "fetch_artifact",
    "hf_cache_repo_root", "hub_offline", "is_hub_id", "model_card", "push_artifact",
]

logger = logging.getLogger(__name__)

HUB_INSTALL = 'pip install "mxbai-integrations[hub]"'
CARD_NAME = "README.md"
CARD_TAGS = ("onnx", "reranker", "mxbai", "text-ranking")
DEFAULT_REVISION = "main"
# Mixedbread publishes every mxbai-rerank model under Apache-2.0; any other source's license is
# not recorded in the manifest, so the card says "other" rather than guess.
APACHE_SOURCES = frozenset({
    "mixedbread-ai/mxbai-rerank-xsmall-v1", "mixedbread-ai/mxbai-rerank-base-v1",
    "mixedbread-ai/mxbai-rerank-large-v1", "mixedbread-ai/mxbai-rerank-base-v2",
    "mixedbread-ai/mxbai-rerank-large-v2",
})
_COMMIT_HASH = re.compile(r"[0-9a-f]{40}")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_TRUE = {"1", "ON", "YES", "TRUE"}


# -- huggingface_hub, optional -------------------------------------------------------------------------
def _hub() -> ModuleType:
    """huggingface_hub, or one MissingExtraError that says how to install it."""
    try:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors  # noqa: F401  (the submodules used below, not loaded lazily)
    except ImportError:
        raise MissingExtraError(
            f"downloading or pushing an artifact on the Hugging Face Hub needs huggingface_hub: {HUB_INSTALL}"
        ) from None
    return huggingface_hub


def hub_offline() -> bool:
    """Whether the Hub must not be contacted: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set.

    huggingface_hub reads these once, at import; reading them again here also honours a value set
    later in the process (a notebook, a test), by asking huggingface_hub for cached files only.
    """
    hub = _hub()
    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper()
    return bool(hub.constants.HF_HUB_OFFLINE) or env in _TRUE


def is_hub_id(text: str | None) -> bool:
    """``org/name`` as the Hub spells a repo id (not a path, not a bare name).

    Examples:
        >>> is_hub_id("mixedbread-ai/mxbai-rerank-base-v2"), is_hub_id("./artifact"), is_hub_id("/abs/dir")
        (True, False, False)
    """
    return isinstance(text, str) and _HUB_ID.fullmatch(text) is not None and ".." not in text


def hf_cache_repo_root(path: str | os.PathLike[str]) -> Path | None:
    """The repo folder of a Hugging Face cache snapshot directory, or None for any other directory.

    A snapshot (``<cache>/models--org--name/snapshots/<commit>``) holds symlinks into the repo's
    ``blobs/``; ``verify_files`` refuses links that leave the root it is given, so a snapshot is
    checked against its repo folder rather than against itself. Pure path logic: no import of
    huggingface_hub, so a snapshot directory given as a path loads without the ``hub`` extra.

    Examples:
        >>> hf_cache_repo_root("/tmp/not-a-snapshot") is None
        True
    """
    snapshot = Path(os.path.abspath(Path(path).expanduser()))
    repo = snapshot.parent.parent
    if (_COMMIT_HASH.fullmatch(snapshot.name) and snapshot.parent.name == "snapshots"
            and repo.name.startswith("models--") and (repo / "blobs").is_dir()):
        return repo
    return None


def _check_repo_id(repo_id: Any) -> str:
    if not isinstance(repo_id, str):
        raise ArgumentTypeError(f"repo_id must be a hub repo id 'org/name', got {type(repo_id).__name__}")
    if not is_hub_id(repo_id):
        raise ArgumentError(f"repo_id must be a hub repo id 'org/name', got {repo_id!r}")
    return repo_id


def _check_revision(revision: Any) -> str | None:
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise ArgumentError(f"revision must be a branch, tag or commit hash (or None for main), got {revision!r}")
    return revision


# -- fetch ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubArtifact:
    """An artifact repo downloaded into the Hugging Face cache and checked against its manifest.

    Attributes:
        repo_id: the hub repo id.
        revision: the revision asked for (``main`` when none was given).
        commit_hash: the commit every file was taken from (the manifest's commit).
        path: the snapshot directory: load it as an artifact directory.
        allowed_root: the repo's cache folder; the snapshot's files are links into its ``blobs/``,
            so pass it as ``verify_files(..., allowed_root=...)`` (and to ``Scorer``).
        manifest: the manifest, read and checked.
        downloaded: the files this call downloaded (they were sha256-checked right after).
        checksums_verified: True when every file's sha256 was checked in this call.
    """

    repo_id: str
    revision: str
    commit_hash: str
    path: Path
    allowed_root: Path
    manifest: Manifest
    downloaded: tuple[str, ...] = ()
    checksums_verified: bool = False


def _repo_folder(cache: Path, repo_id: str) -> Path:
    """``models--org--name``, as huggingface_hub names a model repo's cache folder."""
    return cache / ("models--" + repo_id.replace("/", "--"))


def _cached_commit(repo_root: Path, revision: str) -> str | None:
    """The commit a revision points to in the cache (a commit hash as is, a branch or tag through refs/)."""
    if _COMMIT_HASH.fullmatch(revision):
        return revision
    ref = repo_root / "refs" / revision
    return ref.read_text(encoding="utf-8").strip() if ref.is_file() else None


def _cached_checkpoint(repo_root: Path, revision: str) -> bool:
    """The repo is in the cache at this revision without a manifest: a checkpoint, not an artifact."""
    commit = _cached_commit(repo_root, revision)
    if commit is None:
        return False
    return (repo_root / "snapshots" / commit).is_dir() or (repo_root / ".no_exist" / commit / MANIFEST_NAME).is_file()


def _neither(repo_id: str, revision: str, why: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model: {repo_id!r} (revision {revision!r}) is neither an mxbai ONNX artifact repo (one holding "
        f"{MANIFEST_NAME}) nor a checkpoint we could download: {why}"
    )


def _download_manifest(hub: ModuleType, repo_id: str, revision: str, cache: Path, offline: bool,
                       token: str | bool | None, endpoint: str | None) -> Path | None:
    """The cached manifest file, or None when the repo exists at ``revision`` without one (a checkpoint)."""
    errors = hub.errors
    try:
        return Path(hub.hf_hub_download(repo_id, MANIFEST_NAME, revision=revision, cache_dir=str(cache),
                                        token=token, local_files_only=offline, endpoint=endpoint))
    except errors.RevisionNotFoundError:
        raise ModelNotFoundError(f"revision: {revision!r} does not exist in hub repo {repo_id!r}") from None
    except errors.GatedRepoError:
        raise ModelNotFoundError(f"model: {repo_id!r} is a gated repo: accept its conditions on the Hub and pass "
                                 "a token (token=..., or log in with `hf auth login`)") from None
    except errors.RepositoryNotFoundError:
        raise _neither(repo_id, revision, "the Hub has no such repository, or it is private and no valid token was "
                                          "given (token=..., or log in with `hf auth login`)") from None
    except errors.LocalEntryNotFoundError as exc:  # before EntryNotFoundError: it is a subclass
        if _cached_checkpoint(_repo_folder(cache, repo_id), revision):
            return None
        why = ("HF_HUB_OFFLINE is set" if offline
               else f"the Hub could not be reached ({exc.__cause__ or exc})")
        raise _neither(repo_id, revision, f"{why}, and it is not in the Hugging Face cache {str(cache)!r}") from None
    except errors.EntryNotFoundError:
        return None  # the repo and revision exist; the file does not
    except errors.HfHubHTTPError as exc:
        if exc.response is not None and exc.response.status_code in (401, 403):
            raise ModelNotFoundError(f"model: {repo_id!r}: the Hub refused the token "
                                     f"({exc.response.status_code}); check token= or `hf auth login`") from None
        raise


def _read_hub_manifest(path: Path, repo_id: str, commit: str) -> Manifest:
    where = f"hub repo {repo_id!r} at commit {commit}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"model: {MANIFEST_NAME} of {where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"model: {MANIFEST_NAME} of {where} must hold a JSON object")
    try:
        return Manifest.from_dict(data)
    except ArtifactError as exc:
        raise ArtifactError(f"model: {where}: {exc}") from None


def _allow_patterns(manifest: Manifest) -> list[str]:
    """fnmatch patterns that match exactly the manifest and the files it lists (names escaped)."""
    return [glob.escape(name) for name in (MANIFEST_NAME, *manifest.files)]


def _verify_fetched(artifact: HubArtifact, verify: bool) -> None:
    """Sizes and links of every file; sha256 of every file (``verify``) or of the ones just downloaded."""
    manifest = artifact.manifest
    try:
        verify_files(artifact.path, manifest, checksums=verify, allowed_root=artifact.allowed_root)
        if not verify and artifact.downloaded:
            fresh = {name: manifest.files[name] for name in artifact.downloaded if name in manifest.files}
            verify_files(artifact.path, replace(manifest, files=fresh), checksums=True,
                         allowed_root=artifact.allowed_root)
    except ArtifactError as exc:
        raise type(exc)(
            f"{exc} (hub repo {artifact.repo_id!r} at commit {artifact.commit_hash}, cached in "
            f"{str(artifact.path)!r}). Nothing was deleted: remove {str(artifact.allowed_root)!r} (or that "
            "revision, with the `hf cache` command) to download it again, and tell the repo's owner if it fails again."
        ) from None


def fetch_artifact(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    endpoint: str | None = None,
    verify: bool = True,
) -> HubArtifact | None:
    """Download an artifact repo's files into the Hugging Face cache, or None for a checkpoint repo.

    The manifest is read first (``hf_hub_download`` of ``mxbai_onnx.json``), then exactly the files
    it lists are downloaded (``snapshot_download`` with ``allow_patterns``) from the manifest's own
    commit, so a push between the two calls cannot mix two versions. Everything goes through the
    standard cache, so ``HF_HUB_OFFLINE=1`` serves a cached artifact without network access, and
    ``hf cache`` tools see it. Files downloaded by this call are always sha256-checked against the
    manifest; ``verify`` also checks the ones that were already cached.

    Args:
        repo_id: hub repo id, ``org/name``.
        revision: branch, tag or commit hash (default ``main``).
        cache_dir: Hugging Face cache directory; None is huggingface_hub's default
            (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``).
        token: Hub token for private or gated repos (None: the saved login, if any).
        endpoint: Hub endpoint (None: ``HF_ENDPOINT`` or huggingface.co).
        verify: check the sha256 of every file, cached or not (reads every byte once).

    Returns:
        The snapshot and its manifest, or None when the repo exists at ``revision`` but holds no
        ``mxbai_onnx.json`` (a source checkpoint: export it, e.g. on first use).

    Raises:
        ModelNotFoundError: the repo (or revision) cannot be found: it does not exist, it is private
            or gated without a valid token, or it is offline and not in the cache.
        ArtifactError: the manifest does not hold, or a file is missing, links outside the repo's
            cache folder, or does not match its size or sha256 (the message names the file).
        MissingExtraError: huggingface_hub is not installed.

    Examples:
        >>> artifact = fetch_artifact("my-org/mxbai-rerank-xsmall-v1-onnx", revision="v1.0")  # doctest: +SKIP
        >>> sorted(p.name for p in artifact.path.iterdir())  # doctest: +SKIP
        ['model.onnx', 'mxbai_onnx.json', 'tokenizer.json']
        >>> fetch_artifact("mixedbread-ai/mxbai-rerank-xsmall-v1") is None  # a checkpoint  # doctest: +SKIP
        True
    """
    hub = _hub()
    repo_id = _check_repo_id(repo_id)
    wanted = _check_revision(revision) or DEFAULT_REVISION
    verify = check_bool("verify", verify)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else Path(hub.constants.HF_HUB_CACHE)
    offline = hub_offline()
    manifest_file = _download_manifest(hub, repo_id, wanted, cache, offline, token, endpoint)
    if manifest_file is None:
        logger.info("%s@%s holds no %s: a checkpoint, not an artifact", repo_id, wanted, MANIFEST_NAME)
        return None
    commit = manifest_file.parent.name
    manifest = _read_hub_manifest(manifest_file, repo_id, commit)
    snapshot = manifest_file.parent
    missing = [name for name in manifest.files if not (snapshot / name).exists()]
    path = Path(hub.snapshot_download(repo_id, revision=commit, cache_dir=str(cache), token=token,
                                      allow_patterns=_allow_patterns(manifest), local_files_only=offline,
                                      endpoint=endpoint))
    artifact = HubArtifact(
        repo_id=repo_id, revision=wanted, commit_hash=commit, path=path,
        allowed_root=_repo_folder(cache, repo_id), manifest=manifest,
        downloaded=tuple(name for name in missing if (path / name).exists()), checksums_verified=verify,
    )
    _verify_fetched(artifact, verify)
    logger.info("hub artifact %s@%s (commit %s) in %s; downloaded %s", repo_id, wanted, commit, path,
                list(artifact.downloaded) or "nothing")
    return artifact


# -- the model card ------------------------------------------------------------------------------------
def _source_hub_id(manifest: Manifest) -> str | None:
    """The source checkpoint's hub id, or None for a local checkpoint (its name is not a hub id)."""
    source = manifest.source
    return source.model_id if source.path is None and is_hub_id(source.model_id) else None


def card_license(manifest: Manifest) -> str:
    """The license the card declares when none is given: inherited where it is known.

    The manifest does not record the source's license. Every mixedbread-ai mxbai-rerank model is
    Apache-2.0, so an artifact of one of them is too; anything else is "other" (state the real one
    with ``push_artifact(..., license=...)``).

    Examples:
        >>> from types import SimpleNamespace as NS
        >>> card_license(NS(source=NS(model_id="mixedbread-ai/mxbai-rerank-base-v2", path=None)))
        'apache-2.0'
    """
    return "apache-2.0" if _source_hub_id(manifest) in APACHE_SOURCES else "other"


def export_command(manifest: Manifest, out_dir: str) -> str:
    """The ``mxbai-onnx export`` command that makes this artifact again, with every recorded setting.

    Examples:
        >>> export_command(read_manifest("mxbai-rerank-base-v2-onnx"), "out")  # doctest: +SKIP
        'mxbai-onnx export mixedbread-ai/mxbai-rerank-base-v2 out --dtype fp32 --max-length 8192 --opset 18 ...'
    """
    source = manifest.source
    parts = ["mxbai-onnx", "export", source.path or source.model_id or "SOURCE", out_dir,
             "--dtype", manifest.dtype, "--max-length", str(manifest.max_length), "--opset", str(manifest.opset)]
    if source.revision:
        parts += ["--revision", source.revision]
    if manifest.family == "v2" and manifest.score.normalize_shift is not None:
        parts += ["--normalize-shift", format(manifest.score.normalize_shift, "g")]
    exporter = manifest.created_with.get("exporter")
    if exporter in ("torch", "optimum"):
        parts += ["--exporter", exporter]
    if manifest.validation is not None and manifest.validation.skipped:
        parts.append("--no-validate")
    return " ".join(shlex.quote(p) for p in parts)


def _cell(value: Any) -> str:
    """One markdown table cell: no newline or pipe can break the table."""
    return str(value).replace("\n", " ").replace("|", "\\|")


def _size(n: int) -> str:
    """Bytes in decimal units, as the Hub shows file sizes."""
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} GB"


def _front_matter(manifest: Manifest, license: str) -> list[str]:
    """YAML front matter; every scalar written as a JSON string, which YAML reads as is."""
    lines = ["---", f"library_name: {json.dumps('mxbai-integrations')}", f"license: {json.dumps(license)}",
             f"pipeline_tag: {json.dumps('text-ranking')}", "tags:"]
    lines += [f"- {json.dumps(tag)}" for tag in CARD_TAGS]
    base = _source_hub_id(manifest)
    if base is not None:
        lines.append(f"base_model: {json.dumps(base)}")
        if manifest.dtype in ("int8", "int4"):
            lines.append(f"base_model_relation: {json.dumps('quantized')}")
    return [*lines, "---"]


def _validation_lines(manifest: Manifest) -> list[str]:
    record = manifest.validation
    if record is None:
        return ["No validation was recorded at export. Run `mxbai-onnx validate` before relying on these scores."]
    lines = [f"Validation: {record.summary()}", ""]
    if record.skipped:
        return lines
    stats = [
        ("reference", f"{record.reference} ({record.reference_dtype})"),
        ("scored with", record.scored_with),
        ("pairs", record.pairs),
        ("max abs diff, unpadded", format_stat(record.max_abs_diff_unpadded, ".3g")),
        ("max abs diff, padded", format_stat(record.max_abs_diff_padded, ".3g")),
        ("Spearman, pooled", format_stat(record.spearman_pooled, ".4f")),
        ("Spearman, lowest case", format_stat(record.spearman_min, ".4f")),
        ("top-1 agreement", format_stat(record.top1_agreement, ".0%")),
        ("token ids equal", "yes" if record.token_ids_equal else "NO"),
        ("scores finite", "yes" if record.all_finite else "NO"),
        ("decided by", record.decided_by or "?"),
    ]
    return [*lines, "| statistic | value |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in stats)]


def model_card(manifest: Manifest, repo_id: str, *, license: str | None = None) -> str:
    """The repo's README.md: hub metadata, then what the artifact is, how it was checked and made.

    Args:
        manifest: the artifact's manifest (everything on the card comes from it).
        repo_id: the repo the card is for (the usage snippet loads it).
        license: the license to declare; None inherits it where known (:func:`card_license`).

    Returns:
        Markdown with YAML front matter (library_name, license, pipeline_tag, tags, base_model).

    Examples:
        >>> card = model_card(read_manifest("mxbai-rerank-base-v2-onnx"), "my-org/x")  # doctest: +SKIP
        >>> card.splitlines()[:3]  # doctest: +SKIP
        ['---', 'library_name: "mxbai-integrations"', 'license: "apache-2.0"']
    """
    license = license or card_license(manifest)
    source = manifest.source
    base = _source_hub_id(manifest)
    origin = (f"[{base}](https://huggingface.co/{base})" if base
              else f"built from the local checkpoint `{source.model_id or source.path or '?'}`")
    name = repo_id.split("/")[-1]
    files = ", ".join(f"`{n}` ({_size(r.bytes)})" for n, r in manifest.files.items())
    table = [
        ("source", f"{source.model_id or source.path or '?'}" + (f" @ {source.revision}" if source.revision else "")),
        ("family", f"{manifest.family} ({source.architecture or '?'})"),
        ("dtype", manifest.dtype),
        ("max_length", manifest.max_length),
        ("opset", manifest.opset),
        ("padding side", manifest.padding_side),
        ("score", manifest.score.activation + (f", normalize shift {manifest.score.normalize_shift:g}"
                                               if manifest.score.normalize_shift is not None else "")),
        ("files", files),
    ]
    lines = [
        *_front_matter(manifest, license), "",
        f"# {name}", "",
        f"The mxbai-rerank {manifest.family} reranker {origin}, exported to ONNX ({manifest.dtype}) for "
        "mxbai-integrations, which runs it on ONNX Runtime with no PyTorch or transformers installed. "
        "Every file's sha256 is in `mxbai_onnx.json` and is checked when the artifact is downloaded and "
        "loaded.", "",
        "## Usage", "",
        "```bash", HUB_INSTALL, "```", "",
        "```python", "from mxbai_integrations import MxbaiReranker", "",
        f"reranker = MxbaiReranker({json.dumps(repo_id)})   # downloads only the artifact files, once",
        'reranker.rank("Who wrote Pride and Prejudice?", ["Jane Austen published it in 1813.", "Pride is a sin."])',
        "```", "",
        "## Artifact", "",
        "| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in table), "",
        "## Validation against the reference", "",
        *_validation_lines(manifest), "",
        "## How it was made", "",
        "```bash", export_command(manifest, f"./{name}"), "```", "",
    ]
    if manifest.family == "v2" and manifest.created_with.get("attention") == "eager":
        lines += ["The graph uses eager attention (`export_model(..., fused_attention=False)`), which the CLI does "
                  "not offer.", ""]
    if manifest.created_with:
        lines += ["| created with | |", "|---|---|",
                  *(f"| {_cell(k)} | {_cell(v)} |" for k, v in manifest.created_with.items()), ""]
    return "\n".join(lines)


# -- push ----------------------------------------------------------------------------------------------
def _checked_artifact(directory: Path, allow_invalid: bool) -> Manifest:
    """The manifest of an artifact fit to publish: files in place, graph as described, validation not failed."""
    manifest = read_manifest(directory)
    verify_files(directory, manifest, checksums=False, allowed_root=hf_cache_repo_root(directory))
    check_graph(directory, manifest)
    if CARD_NAME in manifest.files:
        raise ArtifactError(f"artifact_dir: the manifest lists {CARD_NAME!r}, which push writes (the model card)")
    record = manifest.validation
    if manifest.failed_validation and not allow_invalid:
        assert record is not None
        raise ArtifactError(
            f"artifact_dir: {str(directory)!r} failed validation at export ({record.summary()}); pushing it would "
            "publish scores known to be wrong. Re-export it, or pass allow_invalid=True (CLI: --allow-invalid) to "
            "push it anyway with the failure on its model card."
        )
    if record is None or record.skipped:
        logger.warning("pushing %s, which was not validated against the reference; its card says so", directory)
    return manifest


def _operations(hub: ModuleType, directory: Path, manifest: Manifest, card: str) -> list[Any]:
    """One upload per file, each checked against the manifest's sha256 with the hash the upload itself uses.

    ``CommitOperationAdd`` hashes the file to decide how to upload it (the LFS object id), so
    comparing that hash with the manifest checks exactly the bytes that will be sent, in one read.
    """
    operations = [hub.CommitOperationAdd(path_in_repo=MANIFEST_NAME, path_or_fileobj=str(directory / MANIFEST_NAME))]
    for name, record in manifest.files.items():
        op = hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(directory / name))
        if op.upload_info.sha256.hex() != record.sha256:
            raise ArtifactError(f"artifact_dir: artifact file {name!r} is corrupt: sha256 does not match the "
                                f"manifest; nothing was pushed")
        operations.append(op)
    operations.append(hub.CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card.encode("utf-8")))
    return operations


def _hub_write_error(hub: ModuleType, exc: Exception, repo_id: str) -> Exception | None:
    """A refusal by the Hub that is the caller's to fix (no such repo, no write access), as ArgumentError."""
    errors = hub.errors
    if isinstance(exc, errors.RepositoryNotFoundError):
        return ArgumentError(f"repo_id: cannot write to {repo_id!r}: the Hub says it does not exist or the token "
                             "has no access (check token= or `hf auth login`)")
    response = getattr(exc, "response", None)
    if isinstance(exc, errors.HfHubHTTPError) and response is not None and response.status_code in (401, 403):
        return ArgumentError(f"repo_id: the Hub refused to let this token write to {repo_id!r} "
                             f"({response.status_code}); use a token with write access (token= or `hf auth login`)")
    return None


def push_artifact(
    artifact_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    allow_invalid: bool = False,
    license: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Upload an artifact directory to a hub model repo, with a model card written from its manifest.

    The artifact is checked first and nothing is sent if it fails: every listed file present, of
    the recorded size and sha256 (hashed once, by the upload itself), the graph what the manifest
    says, and an export-time validation that did not fail (unless ``allow_invalid``). One commit
    holds ``mxbai_onnx.json``, the files it lists and ``README.md``; nothing else in the directory
    is uploaded. Large binary files go through the Hub's LFS/Xet storage as huggingface_hub decides.

    Args:
        artifact_dir: the artifact directory (``mxbai-onnx export`` output, or a fetched snapshot).
        repo_id: the model repo, ``org/name``; created if it does not exist.
        private: create the repo private (no effect on an existing repo).
        revision: branch to commit to (created from main if missing); None is main.
        token: Hub token with write access (None: the saved login).
        commit_message: default "Upload mxbai ONNX artifact (FAMILY, DTYPE) of SOURCE".
        create_pr: open a pull request against main instead of committing to it.
        allow_invalid: push an artifact whose export-time validation failed (the card says so).
        license: the card's license; None inherits it where known (see :func:`card_license`:
            apache-2.0 for mixedbread-ai's mxbai-rerank models, else "other").
        endpoint: Hub endpoint (None: ``HF_ENDPOINT`` or huggingface.co).

    Returns:
        The commit URL (the pull request URL with ``create_pr``).

    Raises:
        ModelNotFoundError: ``artifact_dir`` is not an artifact directory.
        ArtifactError: a file is missing or corrupt, the graph does not fit the manifest, or the
            validation failed and ``allow_invalid`` is False.
        ArgumentError: a bad argument, the Hub refused the write, or ``HF_HUB_OFFLINE`` is set.
        MissingExtraError: huggingface_hub is not installed.

    Examples:
        >>> push_artifact("./mxbai-rerank-xsmall-v1-int8", "my-org/mxbai-rerank-xsmall-v1-onnx-int8",
        ...               private=True)  # doctest: +SKIP
        'https://huggingface.co/my-org/mxbai-rerank-xsmall-v1-onnx-int8/commit/9b2e...'
    """
    hub = _hub()
    repo_id = _check_repo_id(repo_id)
    revision = _check_revision(revision)
    for name, flag in (("private", private), ("create_pr", create_pr), ("allow_invalid", allow_invalid)):
        check_bool(name, flag)
    if create_pr and revision not in (None, DEFAULT_REVISION):
        raise ArgumentError(f"create_pr: a pull request targets main; got revision={revision!r}")
    if hub_offline():
        raise ArgumentError("push needs the Hugging Face Hub, but HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set; "
                            "unset it to push")
    directory = Path(artifact_dir).expanduser()
    manifest = _checked_artifact(directory, allow_invalid)
    operations = _operations(hub, directory, manifest, model_card(manifest, repo_id, license=license))
    message = commit_message or (f"Upload mxbai ONNX artifact ({manifest.family}, {manifest.dtype}) of "
                                 f"{manifest.source.model_id or directory.name}")
    api = hub.HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision not in (None, DEFAULT_REVISION):
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        info = api.create_commit(repo_id, operations, commit_message=message, repo_type="model",
                                 revision=revision, create_pr=create_pr)
    except hub.errors.HfHubHTTPError as exc:
        mapped = _hub_write_error(hub, exc, repo_id)
        if mapped is None:
            raise
        raise mapped from exc
    logger.info("pushed %s to %s: %s", directory, repo_id, info.commit_url)
    return str(info.pr_url) if create_pr and info.pr_url else str(info.commit_url)

