"""The benchmark scripts and their shared module (``benchmarks/benchlib``), checked without timing anything.

Every script must start and parse its command line (``--help``) with nothing but the installed
package and ``benchmarks/`` itself on the path. The figures already published in
``benchmarks/results/`` are the reference for the shared records: re-deriving their drift with the
shared ``Drift`` (the project's one Spearman) must give the published numbers, re-printing them must
give the published markdown byte for byte, and reading and re-writing their JSON must give the same
JSON. One tiny end-to-end run of ``rerank_bench.py`` (the test suite's tiny v1 model, one ONNX row
and the CrossEncoder reference) checks the child processes, the records and the printout together.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"
SCRIPTS = ("rerank_bench", "long_context_bench", "v1_graph_ab", "attention_ab", "make_model", "plot",
           "hostile_inputs", "tolerance_noise")
PUBLISHED_RUNS = ("xsmall-v1", "base-v2", "base-v2-fused")


@pytest.fixture(scope="module")
def benchlib() -> Iterator[dict[str, ModuleType]]:
    """benchlib's modules, imported the way a script sees them (benchmarks/ first on the path)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        names = ("results", "machine", "models", "rerank.records", "rerank.report")
        yield {n: importlib.import_module(f"benchlib.{n}") for n in names}


def _script(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_starts_and_parses_its_command_line(name: str) -> None:
    proc = _script(name, "--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


def test_scripts_neither_edit_sys_path_nor_read_ru_maxrss() -> None:
    """benchlib is found because the script's directory is on the path; peak memory is VmHWM."""
    sources = [BENCH / f"{name}.py" for name in SCRIPTS] + sorted((BENCH / "benchlib").rglob("*.py"))
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("ru_maxrss", "getrusage"), f"{path}:{node.lineno}"
                if node.attr in ("insert", "append") and isinstance(node.value, ast.Attribute):
                    assert node.value.attr != "path", f"{path}:{node.lineno} edits sys.path"


def test_benchmark_parents_never_import_torch() -> None:
    """The parent only orchestrates: torch lives in the reference children, so ONNX rows' memory is their own."""
    code = ("import sys\nimport rerank_bench, long_context_bench, plot, make_model\n"
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=BENCH, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_peak_memory_is_the_fresh_process_own(benchlib: dict[str, ModuleType]) -> None:
    """A child started by a parent that touched 256 MiB reports its own VmHWM, not the parent's peak."""
    child = "from benchlib.machine import peak_rss_bytes; print(peak_rss_bytes())"
    parent = ("import subprocess, sys, numpy as np\n"
              "block = np.ones(256 * 2**20 // 8)\n"
              f"out = subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True, check=True)\n"
              "from benchlib.machine import peak_rss_bytes\n"
              "print(peak_rss_bytes(), out.stdout.strip())")
    proc = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, cwd=BENCH, timeout=60)
    assert proc.returncode == 0, proc.stderr
    parent_peak, child_peak = (int(x) for x in proc.stdout.split())
    assert parent_peak > 256 * 2**20
    assert child_peak < 128 * 2**20


@pytest.mark.parametrize("run", ("xsmall-v1", "base-v2"))
def test_drift_reproduces_the_published_figures(benchlib: dict[str, ModuleType], run: str) -> None:
    """The published drift was computed by the benchmark's own rank code (deleted); the shared one agrees."""
    data = json.loads((RESULTS / f"{run}.json").read_text())
    ref = next(r for r in data["backends"] if r["name"] == data["meta"]["drift_reference"])
    for row in data["backends"]:
        got = benchlib["results"].Drift.of(row["scores"], ref["scores"])
        assert got.max_abs == row["max_abs"], row["name"]
        assert got.spearman == pytest.approx(row["spearman"], rel=0, abs=1e-12), row["name"]
        assert got.top10_overlap == row["top10_overlap"], row["name"]


def test_spearman_agrees_with_scipy_on_ties(benchlib: dict[str, ModuleType]) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 200).astype(float)  # many ties on both sides
    b = a + rng.integers(0, 3, 200)
    drift = benchlib["results"].Drift.of(a, b)
    assert drift.spearman == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-12)
    # Ranks are taken at float32: values apart only below float32's precision tie, as in the references' output.
    near = np.array([1.0, 1.0 + 1e-12, 0.5, 0.25])
    assert benchlib["results"].Drift.of(near, [4.0, 3.0, 2.0, 1.0]).spearman == pytest.approx(
        scipy_stats.spearmanr(near.astype(np.float32), [4.0, 3.0, 2.0, 1.0]).statistic, abs=1e-12)


def test_drift_of_a_non_finite_score_is_nan_not_a_rank(benchlib: dict[str, ModuleType]) -> None:
    drift = benchlib["results"].Drift.of([0.1, float("nan"), 0.3], [0.1, 0.2, 0.3])
    assert not drift.finite and np.isnan(drift.max_abs) and np.isnan(drift.top10_overlap)


@pytest.mark.parametrize("run", ("xsmall-v1", "base-v2"))
def test_markdown_reproduces_the_published_table(benchlib: dict[str, ModuleType], run: str) -> None:
    result = benchlib["rerank.records"].RerankResult.from_json(RESULTS / f"{run}.json")
    printed = benchlib["rerank.report"].markdown(result)
    assert printed == (RESULTS / f"{run}.md").read_text().rstrip("\n")


@pytest.mark.parametrize("run", PUBLISHED_RUNS)
def test_published_json_reads_and_writes_back_unchanged(benchlib: dict[str, ModuleType], run: str) -> None:
    data = json.loads((RESULTS / f"{run}.json").read_text())
    result = benchlib["rerank.records"].RerankResult.from_dict(data)
    assert json.loads(json.dumps(result.to_dict())) == data


def test_markdown_table_and_units(benchlib: dict[str, ModuleType]) -> None:
    results = benchlib["results"]
    table = results.markdown_table(["backend", "s", "ok"], [["onnx", "1.5", "yes"]], align="l:r:c")
    assert table.splitlines() == ["| backend | s | ok |", "|---|---:|:---:|", "| onnx | 1.5 | yes |"]
    assert results.mib(3 * 2**30) == "3,072" and results.mib(None) == "-"


def test_models_reads_the_shapes_from_the_test_fixtures(benchlib: dict[str, ModuleType]) -> None:
    models = benchlib["models"]
    shapes = json.loads((REPO / "tests" / "model_shapes.json").read_text())
    assert models.full_depth("base-v2") == shapes["mxbai-rerank-base-v2"]["num_hidden_layers"]
    assert models.random_models().__file__ == str(REPO / "tests" / "random_models.py")
    assert models.full_depth("tiny-v1") == models.random_models().TINY_V1["num_hidden_layers"]


def test_plot_scripts_read_the_published_json(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    figure = tmp_path / "figure.png"
    proc = _script("plot", str(RESULTS / "xsmall-v1.json"), str(RESULTS / "base-v2.json"), "-o", str(figure))
    assert proc.returncode == 0, proc.stderr
    long_figure = tmp_path / "long.png"
    proc = _script("long_context_bench", "--plot-from", str(RESULTS / "long-context-base-v2.json"),
                   "--plot", str(long_figure))
    assert proc.returncode == 0, proc.stderr
    assert figure.stat().st_size > 10_000 and long_figure.stat().st_size > 10_000


def test_rerank_bench_tiny_run_end_to_end(tmp_path: Path, benchlib: dict[str, ModuleType]) -> None:
    """tiny-v1, 8 documents, one ONNX row and the CrossEncoder reference, each in its own child process."""
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    out = tmp_path / "tiny.json"
    proc = _script("rerank_bench", "--shape", "tiny-v1", "--docs", "8", "--repeats", "1", "--warmup", "0",
                   "--dtypes", "fp32", "--backends", "onnx-fp32", "--no-batching", "--workdir", str(tmp_path),
                   "--json", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = benchlib["rerank.records"].RerankResult.from_json(out)
    assert [r.name for r in result.backends] == ["onnx-fp32", "torch-CrossEncoder-fp32"]
    onnx = result.row("onnx-fp32")
    # The same fp32 model through ONNX Runtime and through sentence-transformers, scores in input order.
    assert onnx.figures.drift.max_abs < 1e-4 and onnx.figures.drift.spearman > 0.999
    assert onnx.measured.providers == ["CPUExecutionProvider"]
    assert all(r.measured.peak_rss >= r.measured.rss_after_load > 0 for r in result.backends)
    assert "Load average at start" in proc.stdout and "| onnx-fp32 |" in proc.stdout
    assert result.meta.full_depth == 2 and not result.meta.cut_depth


def test_a_released_v1_shape_builds_with_its_real_vocabulary(tmp_path: Path, benchlib: dict[str, ModuleType]) -> None:
    """make_model's v1 shapes: the embedding table has the released 128,100 rows, the small tokenizer fits in it."""
    from transformers import AutoConfig, AutoTokenizer

    out = benchlib["models"].build_checkpoint("xsmall-v1", tmp_path / "xsmall-v1", layers=1)
    config = AutoConfig.from_pretrained(out)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (128100, 384, 1)
    assert len(AutoTokenizer.from_pretrained(out)) < config.vocab_size
