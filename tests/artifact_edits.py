"""What the run-time tests share: a query and documents the tiny models separate, the CPU provider
list, and copies of an artifact with a hand-edited manifest (the way an operator or an attacker edits one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mxbai_integrations.artifact import MANIFEST_NAME

QUERY = "Which city is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower was completed in 1889. " * 5,
    "Bananas are yellow.",
    "La tour Eiffel se trouve à Paris.",
    "France",
]
CPU = ["CPUExecutionProvider"]


def copy_artifact(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_manifest(artifact: Path, edit: Any) -> None:
    """Apply ``edit`` (a function of the manifest's dict) to the manifest file in place."""
    path = artifact / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
