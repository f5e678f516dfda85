"""The one place benchmarks reach the test fixtures that build random-weight checkpoints.

``tests/`` is not a package and not installed, so ``tests/random_models.py`` is loaded here by file
path (importlib), once, instead of every script putting ``tests/`` on ``sys.path``. The shapes of the
released models come from ``tests/model_shapes.json``; ``tiny-v1`` and ``tiny-v2`` are the test
suite's own tiny models (seconds to build and run), for smoke runs only.

Example:
    >>> from benchlib.models import family, full_depth
    >>> family("base-v2"), full_depth("xsmall-v1")
    ('v2', 12)
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
RANDOM_MODELS = TESTS_DIR / "random_models.py"
SHAPES_FILE = TESTS_DIR / "model_shapes.json"

# The released models' shapes (full width; depth can be cut), and the test suite's tiny ones.
SHAPES = ("xsmall-v1", "base-v1", "large-v1", "base-v2", "large-v2")
TINY_SHAPES = ("tiny-v1", "tiny-v2")
ALL_SHAPES = SHAPES + TINY_SHAPES


def family(shape: str) -> str:
    """``v1`` (DeBERTa-v2 cross-encoder) or ``v2`` (Qwen2 LLM reranker)."""
    return "v1" if shape.endswith("-v1") else "v2"


def config_name(shape: str) -> str:
    """The key in tests/model_shapes.json for a released shape (``base-v2`` -> ``mxbai-rerank-base-v2``)."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    return f"mxbai-rerank-{shape}"


@functools.cache
def random_models() -> ModuleType:
    """``tests/random_models.py`` as a module, loaded by path (tests/ is not a package).

    Registered as ``random_models`` (the name the test suite imports it by), so a test process
    that already imported it shares the one copy.
    """
    loaded = sys.modules.get("random_models")
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == RANDOM_MODELS:
        return loaded
    spec = importlib.util.spec_from_file_location("random_models", RANDOM_MODELS)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {RANDOM_MODELS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["random_models"] = module
    spec.loader.exec_module(module)
    return module


def model_shape(shape: str) -> dict[str, Any]:
    """The config values of a shape: tests/model_shapes.json, or the test suite's tiny shapes."""
    if shape == "tiny-v1":
        return dict(random_models().TINY_V1)
    if shape == "tiny-v2":
        return dict(random_models().TINY_V2)
    return dict(json.loads(SHAPES_FILE.read_text())[config_name(shape)])


def full_depth(shape: str) -> int:
    """The real model's number of layers (a cut-depth table says "L of full_depth")."""
    return int(model_shape(shape)["num_hidden_layers"])


def build_checkpoint(shape: str, out: Path, *, layers: int | None = None, seed: int = 0) -> Path:
    """Write a random-weight checkpoint of ``shape`` (tokenizer included) to ``out``."""
    rm = random_models()
    if shape in TINY_SHAPES:
        depth = {} if layers is None else {"num_hidden_layers": layers}
        build = rm.build_v1_checkpoint if shape == "tiny-v1" else rm.build_v2_checkpoint
        return Path(build(out, seed=seed, **depth))
    return Path(rm.build_shape(config_name(shape), out, layers=layers, seed=seed))
