"""Shared fixtures: tiny random-weight checkpoints with the real architectures, and their artifacts.

Built once per session in a temp dir (seconds each); nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def v1_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from random_models import build_v1_checkpoint

    return build_v1_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-v1")


@pytest.fixture(scope="session")
def v2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from random_models import build_v2_checkpoint

    return build_v2_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-v2")


def _export(checkpoint: Path, root: Path, dtype: str) -> Path:
    from onnx_export import export_model

    return export_model(checkpoint, root / f"{checkpoint.name}-{dtype}", dtype=dtype, progress=False)


@pytest.fixture(scope="session")
def v1_artifact(v1_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 v1 artifact, validated against sentence-transformers at export time."""
    return _export(v1_checkpoint, tmp_path_factory.mktemp("art"), "fp32")


@pytest.fixture(scope="session")
def v2_artifact(v2_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 v2 artifact, validated against mxbai-rerank at export time."""
    return _export(v2_checkpoint, tmp_path_factory.mktemp("art"), "fp32")


@pytest.fixture(scope="session")
def export_artifact(tmp_path_factory: pytest.TempPathFactory):
    """Factory: export(checkpoint, dtype) -> artifact dir, cached per (checkpoint, dtype)."""
    cache: dict[tuple[Path, str], Path] = {}
    root = tmp_path_factory.mktemp("art-extra")

    def make(checkpoint: Path, dtype: str) -> Path:
        key = (checkpoint, dtype)
        if key not in cache:
            cache[key] = _export(checkpoint, root, dtype)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def v1_reference(v1_checkpoint: Path):
    """sentence-transformers CrossEncoder on the tiny v1 checkpoint (float32, CPU)."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(v1_checkpoint), device="cpu")


@pytest.fixture(scope="session")
def v2_reference(v2_checkpoint: Path):
    """mxbai_rerank.MxbaiRerankV2 on the tiny v2 checkpoint (float32, CPU, max_length 8192)."""
    import torch
    from mxbai_rerank import MxbaiRerankV2

    return MxbaiRerankV2(str(v2_checkpoint), device="cpu", torch_dtype=torch.float32)
