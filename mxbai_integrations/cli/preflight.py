"""Checks the CLI makes before any heavy import: the paths the user gave, and the extras a command needs.

A mistyped path must fail in a fraction of a second with a sentence about that path, not after
torch and transformers have loaded (seconds) or deep inside them (a message about something else).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from mxbai_integrations.artifact import MANIFEST_NAME, Manifest, read_manifest
from mxbai_integrations.cli.console import PROG
from mxbai_integrations.cli.errors import UsageError
from mxbai_integrations.errors import MissingExtraError
from mxbai_integrations.resolve import looks_like_path

# Top-level modules each extra provides; checked before any work so a missing one is one line.
EXTRA_MODULES = {
    "export": ("torch", "transformers", "onnx", "onnxscript"),
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "ray": ("ray",),
    "eval": ("ranx", "bm25s"),
}
REFERENCE_MODULES = {"v1": ("sentence_transformers",), "v2": ("mxbai_rerank",)}


def install_hint(extra: str) -> str:
    return f'pip install "mxbai-integrations[{extra}]"'


def require(modules: Sequence[str], why: str, extra: str) -> None:
    """Fail early, in one line, when an optional extra is not installed."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"{why} needs {', '.join(missing)} (the `{extra}` extra): {install_hint(extra)}")


def artifact_dir(model: str) -> tuple[Path, Manifest]:
    """MODEL of ``info``/``validate``: an artifact directory and its manifest."""
    directory = Path(model).expanduser()
    if not directory.exists():
        raise UsageError(f"model: {model!r} is not an artifact directory (export one with `{PROG} export`)")
    if not directory.is_dir():
        raise UsageError(f"model: {model!r} is a file, not an artifact directory (the directory that holds "
                         f"{MANIFEST_NAME})")
    return directory.resolve(), read_manifest(directory)


def checkpoint_source(source: str, argument: str) -> str:
    """A checkpoint directory (resolved) or a hub id, as typed; a path that is not a checkpoint is refused."""
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UsageError(f"{argument}: {source!r} has no config.json; is it a Hugging Face checkpoint?")
        return str(local.resolve())
    if local.exists():
        raise UsageError(f"{argument}: {source!r} is a file, not a checkpoint directory")
    if looks_like_path(source):
        raise UsageError(f"{argument}: {source!r} does not exist (expected a checkpoint directory or a hub id "
                         "such as mixedbread-ai/mxbai-rerank-base-v2)")
    return source


def out_dir(path: str, *, force: bool) -> None:
    """OUT_DIR of ``export``: a new or empty directory, or any directory with ``--force``."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT_DIR: {path!r} exists and is not a directory")
    if out.is_dir() and not force and any(out.iterdir()):
        raise UsageError(f"OUT_DIR: {path!r} is not empty; pass --force to replace it")


def checkpoint_family(source: str, argument: str) -> tuple[str, str] | None:
    """(family, architecture) of a local checkpoint from its config.json alone, or None when unreadable.

    No transformers: the architectures and model_type fields decide, by the exporter's own rule
    (``onnx_export.family.model_family``); a model of neither family is an ArgumentError there.
    """
    config_path = Path(source) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    from onnx_export.family import model_family

    architectures = config.get("architectures") or []
    labels = config.get("id2label")
    view = SimpleNamespace(architectures=architectures, model_type=config.get("model_type"),
                           num_labels=len(labels) if isinstance(labels, dict) else config.get("num_labels", 2))
    family = model_family(view, source, argument=argument)
    return family, (architectures[0] if architectures else str(config.get("model_type")))
