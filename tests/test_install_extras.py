"""How ONNX Runtime is installed: one of two extras, never both, with a version floor per provider.

onnxruntime and onnxruntime-gpu install the same ``onnxruntime`` module. A package that required the
CPU one could not be installed cleanly next to the GPU one (``pip check`` then reports a broken
requirement, and reinstalling brings the CPU build back over the GPU build), so the run time takes
its ONNX Runtime from the ``cpu`` or the ``gpu`` extra, as sentence-transformers (``onnx`` /
``onnx-gpu``) and optimum (``onnxruntime`` / ``onnxruntime-gpu``) do.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_onnxruntime_comes_from_exactly_one_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtimes = {"onnxruntime", "onnxruntime-gpu"}
    assert not _requirement_names(project["dependencies"]) & runtimes
    extras = project["optional-dependencies"]
    assert extras["cpu"] == ["onnxruntime>=1.32"]
    assert _requirement_names(extras["gpu"]) == {"onnxruntime-gpu"}
    for name, requirements in extras.items():
        if name in ("cpu", "gpu"):
            continue
        assert not _requirement_names(requirements) & runtimes, f"extra {name!r} pulls an ONNX Runtime"
        assert not [r for r in requirements if re.search(r"mxbai-integrations\[.*\b(cpu|gpu)\b", r)], name


def test_without_onnxruntime_the_import_names_both_extras() -> None:
    code = ("import sys\nsys.modules['onnxruntime'] = None\n"
            "try:\n    import mxbai_integrations\nexcept ImportError as exc:\n"
            "    print(type(exc).__name__, exc)\nelse:\n    raise SystemExit('imported without onnxruntime')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingExtraError")
    assert "mxbai-integrations[cpu]" in done.stdout and "mxbai-integrations[gpu]" in done.stdout


@pytest.mark.parametrize("version", ["1.31.1", "1.30.0"])
def test_v2_on_the_cpu_below_the_cpu_floor_warns(v2_artifact: Path, v1_artifact: Path, version: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mxbai_integrations import MxbaiReranker, session

    monkeypatch.setattr(session.ort, "__version__", version)
    with pytest.warns(UserWarning, match=rf"onnxruntime {re.escape(version)} .* below the CPU floor 1\.32"):
        MxbaiReranker(v2_artifact, providers=["cpu"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MxbaiReranker(v1_artifact, providers=["cpu"])  # v1 graphs have no GroupQueryAttention


def test_at_the_floor_nothing_is_said(v2_artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mxbai_integrations import MxbaiReranker, session

    monkeypatch.setattr(session.ort, "__version__", "1.32.0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MxbaiReranker(v2_artifact, providers=["cpu"])


def test_an_fp32_v2_artifact_on_cuda_is_told_to_use_fp16(v2_artifact: Path) -> None:
    """Checked on the decision itself: CUDA is not here, and onnxruntime's kernel registry is the fact
    (GroupQueryAttention on CUDA: float16 and bfloat16 only)."""
    from mxbai_integrations import providers, session
    from mxbai_integrations.artifact import read_manifest

    manifest = read_manifest(v2_artifact)
    with pytest.warns(UserWarning, match="fp32 v2 artifact on CUDA runs its attention on the CPU"):
        session._warn_fp32_attention_off_gpu(providers.CUDA, manifest)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session._warn_fp32_attention_off_gpu(providers.CPU, manifest)
