"""Packaging: what ships in the installed mxbai_integrations and onnx_export packages.

The random test checkpoints and their shapes live under tests/, so the installed packages must hold
no fixture code and must read nothing outside the repository (the sibling shared/ directory or the
model-config list the fixtures are built from).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_packages_hold_no_fixture_code_and_read_nothing_outside_the_repository() -> None:
    assert importlib.util.find_spec("onnx_export.random_models") is None
    root = Path(__file__).resolve().parents[1]
    for package in ("mxbai_integrations", "onnx_export"):
        for source in (root / package).rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            for needle in ("../shared", "model-configs.json", "random_models", "build_v1_checkpoint"):
                assert needle not in text, f"{source.relative_to(root)} mentions {needle!r}"
    assert (root / "tests" / "random_models.py").is_file() and (root / "tests" / "model_shapes.json").is_file()
