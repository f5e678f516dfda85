"""The run time alone: a base install (no torch, no transformers), as a serving machine has it.

CI runs this file in a third environment that installs only ``pip install -e ".[cpu,hub]"`` and
pytest. The first environment exports tiny artifacts and records their scores into
``$MXBAI_RUNTIME_ONLY_DIR`` (see .ci/run); here they are loaded and scored with nothing else
installed. Everywhere torch is importable these tests skip, since they prove what happens without it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                                reason="proves the base install: runs only where torch is not installed")

SHARED = os.environ.get("MXBAI_RUNTIME_ONLY_DIR")


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "mxbai-onnx"  # the console script of this environment
    return subprocess.run([str(script), *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=300)


def test_nothing_of_the_build_time_stack_is_installed() -> None:
    for name in ("torch", "transformers", "onnx", "optimum"):
        assert importlib.util.find_spec(name) is None, f"{name} is installed: this is not a run-time-only install"


def test_a_hub_id_with_no_artifact_says_to_export_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mxbai_integrations import MissingExtraError, MxbaiReranker

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingExtraError, match=r"mxbai-onnx export mixedbread-ai/mxbai-rerank-base-v2 .*"
                                                r"mxbai-integrations\[export\]"):
        MxbaiReranker("mixedbread-ai/mxbai-rerank-base-v2", cache_dir=tmp_path / "cache")


def test_the_cli_says_the_same_in_one_line_with_exit_2(tmp_path: Path) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("a\nb\n", encoding="utf-8")
    proc = _run_cli("rerank", "mixedbread-ai/mxbai-rerank-base-v2", "--query", "q", str(docs),
                    env={"MXBAI_INTEGRATIONS_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "export" in lines[0] and "No module named" not in lines[0], proc.stderr


@pytest.mark.skipif(not SHARED, reason="needs artifacts exported by the full environment (MXBAI_RUNTIME_ONLY_DIR)")
def test_artifacts_exported_elsewhere_score_the_same_here() -> None:
    from mxbai_integrations import MxbaiReranker

    expected = json.loads((Path(SHARED) / "scores.json").read_text(encoding="utf-8"))
    assert expected, "the full environment recorded no artifacts"
    for name, case in expected.items():
        reranker = MxbaiReranker(Path(SHARED) / name, providers=["cpu"])
        scores = reranker.score(case["query"], case["documents"])
        assert scores == pytest.approx(case["scores"], abs=1e-6), name
    assert "torch" not in sys.modules and "transformers" not in sys.modules
