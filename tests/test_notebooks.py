"""Every notebook in notebooks/ runs top to bottom (nbclient) on the tiny models, offline.

The kernel is this very interpreter, through a kernel spec written into a temporary JUPYTER_PATH,
so the notebooks run in the environment under test whatever kernels the machine has installed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "mxbai-integrations-tests"


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUPYTER_PATH holding one kernel spec that starts ipykernel on ``sys.executable``."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}),
                                      encoding="utf-8")
    return root


def execute(name: str, cwd: Path, jupyter_path: Path, monkeypatch: pytest.MonkeyPatch,
            env: dict[str, str]) -> nbformat.NotebookNode:
    """Run notebooks/<name> in ``cwd`` with ``env`` added to the kernel's environment."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MXBAI_INTEGRATIONS_CACHE", str(cwd / "cache"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=900, allow_errors=False,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def texts(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook printed or displayed as text (stdout, results, Markdown)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stdout":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/markdown", ""))
                parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def test_notebooks_are_committed_clean() -> None:
    """Valid nbformat, outputs cleared, so diffs stay readable and CI output is the only output."""
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["evaluate.ipynb", "export_and_compare.ipynb", "langchain_rag.ipynb", "llamaindex_rag.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs not cleared"


def _check_rag(nb: nbformat.NotebookNode, cwd: Path, adapter_png: str, family: str) -> None:
    out = texts(nb)
    assert "30 passages, 5 queries" in out
    assert f"family='{family}'" in out
    # One before/after table per query, each with three reranked rows.
    assert out.count("| # | first stage (BM25) | bm25 | after mxbai rerank | rerank |") == 5
    assert "Who wrote Pride and Prejudice?" in out
    assert images(nb) == 1
    assert (cwd / adapter_png).stat().st_size > 1000
    assert "rerank_ms" in out


def test_langchain_rag_notebook(v2_artifact: Path, tmp_path: Path, jupyter_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("langchain_rag.ipynb", tmp_path, jupyter_path, monkeypatch, {"MXBAI_RERANK_MODEL": str(v2_artifact)})
    _check_rag(nb, tmp_path, "langchain_rerank_latency.png", "v2")
    out = texts(nb)
    assert "Human: Who wrote Pride and Prejudice?" in out  # the RAG prompt built from reranked documents
    assert "[lit-" in out


def test_llamaindex_rag_notebook(v1_artifact: Path, tmp_path: Path, jupyter_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("llamaindex_rag.ipynb", tmp_path, jupyter_path, monkeypatch, {"MXBAI_RERANK_MODEL": str(v1_artifact)})
    _check_rag(nb, tmp_path, "llamaindex_rerank_latency.png", "v1")
    assert "Query: Who wrote Pride and Prejudice?" in texts(nb)  # MockLLM echoes the prompt it was given


def test_export_and_compare_notebook(v1_checkpoint: Path, tmp_path: Path, jupyter_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    nb = execute("export_and_compare.ipynb", tmp_path, jupyter_path, monkeypatch,
                 {"MXBAI_RERANK_SOURCE": str(v1_checkpoint)})
    out = texts(nb)
    for dtype in ("fp32", "fp16", "int8"):
        assert (tmp_path / "exports" / f"{v1_checkpoint.name}-{dtype}" / "mxbai_onnx.json").is_file()
        assert f"| {dtype} |" in out
    assert "| NO |" not in out  # every artifact passed its validation
    assert "validation    passed" in out  # `mxbai-onnx info` output
    assert "'top1_agreement'" in out
    assert images(nb) == 1
    assert (tmp_path / "score_agreement.png").stat().st_size > 1000


def test_evaluate_notebook(v2_checkpoint: Path, v2_artifact: Path, export_artifact, tmp_path: Path,
                           jupyter_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ranx")
    pytest.importorskip("bm25s")
    int8 = export_artifact(v2_checkpoint, "int8")
    nb = execute("evaluate.ipynb", tmp_path, jupyter_path, monkeypatch,
                 {"MXBAI_EVAL_MODELS": os.pathsep.join([str(v2_artifact), str(int8)])})
    out = texts(nb)
    assert "30 passages, 10 queries, 15 judgements" in out
    # The table three times (notebook, run-file first stage, CLI), with both models and their agreement.
    assert out.count("Recall@100") >= 3
    assert f"{v2_artifact.name} vs {int8.name}  Spearman" in out
    assert "first stage   bm25 (runs/bm25.trec), top 5" in out
    assert "**NDCG@10 per query**" in out and "| Who wrote Pride and Prejudice? |" in out
    assert images(nb) == 1 and (tmp_path / "evaluation.png").stat().st_size > 5000
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        ["bm25.trec", f"{v2_artifact.name}.trec", f"{int8.name}.trec"])
    (status,) = [o for o in nb.cells[-1].outputs if o.output_type == "execute_result"]
    assert status.data["text/plain"] == "0"  # mxbai-onnx eval's exit status
