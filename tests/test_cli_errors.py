"""What the CLI says when something goes wrong, and with which exit status.

Exit 2 is the user's mistake, decided by the type of the error (never by the stack frame it was
raised in); exit 1 is a check that refused (said in its own words) or an internal error. Each
message must point at what the user typed, in the CLI's words (``--force``, not ``force=True``),
and arrive before any slow import when it can.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from mxbai_integrations import MxbaiReranker, cli
from mxbai_integrations.artifact import MODEL_NAME, read_manifest
from mxbai_integrations.cli.errors import EXIT_FAILED, EXIT_USAGE, classify
from mxbai_integrations.errors import (
    ArgumentError,
    ArgumentTypeError,
    ArtifactError,
    ArtifactFileMissingError,
    ExportError,
    MissingExtraError,
    ModelNotFoundError,
    NonFiniteScoreError,
    ProviderError,
)
from mxbai_integrations.eval.data import EvalDataError
from mxbai_integrations.scorer import Scorer

QUERY = "What is the capital of France?"
DOCS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", "Bananas are yellow."]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "120"}


def one_error_line(err: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mxbai-onnx: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture()
def docs_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- classification by type ----------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [
    cli.UsageError("--query must not be empty"), ArgumentError("top_k must be a positive int"),
    ArgumentTypeError("documents must be a list of str"), ModelNotFoundError("model: 'x' does not exist"),
    ArtifactError("model: artifact file 'model.onnx' is corrupt"), ArtifactFileMissingError("model: missing"),
    ProviderError("providers: ['CUDAExecutionProvider'] not offered"), MissingExtraError("needs torch"),
    EvalDataError("corpus.jsonl:3: not valid JSON"),
    FileExistsError("out_dir: '/x' is not empty"),  # a check's own sentence about an argument (no errno)
])
def test_the_users_mistakes_are_exit_2_with_their_message(exc: Exception) -> None:
    assert classify(exc) == (EXIT_USAGE, str(exc), False)


def test_refusals_are_exit_1_in_their_own_words() -> None:
    non_finite = NonFiniteScoreError([1, 4], dtype="fp16", provider="CUDAExecutionProvider")
    for exc in (ExportError("validation failed: max abs diff 0.2 unpadded"), non_finite):
        assert classify(exc) == (EXIT_FAILED, str(exc), False)


def test_os_errors_are_the_users_only_about_the_paths_they_gave(tmp_path: Path) -> None:
    mine = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "art" / "model.onnx"))
    assert classify(mine, [str(tmp_path / "art")])[0] == EXIT_USAGE
    assert classify(mine, [str(tmp_path / "elsewhere")])[2] is True
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "art" / "model.onnx"))
    assert classify(full, [str(tmp_path / "art")])[2] is True


def test_a_value_error_is_internal_wherever_it_was_raised() -> None:
    """The old rule (innermost frame in our package -> usage error) reported our own bugs as the user's."""
    try:
        np.zeros(3) + np.zeros(4)
    except ValueError as exc:
        assert classify(exc)[:1] == (EXIT_FAILED,) and classify(exc)[2] is True
    ours: dict[str, Any] = {"__name__": "mxbai_integrations.scorer"}
    exec("def boom():\n    raise ValueError('operands could not be broadcast')\n", ours)  # a bug in our code
    try:
        ours["boom"]()
    except ValueError as exc:
        code, message, internal = classify(exc)
        assert (code, internal) == (EXIT_FAILED, True) and message.startswith("internal error: ValueError")


def test_a_bare_value_error_from_inside_the_package_is_exit_1_end_to_end(
    v1_artifact: Path, docs_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours: dict[str, Any] = {"__name__": "mxbai_integrations.scorer"}
    exec("def run_batch(self, ids, mask):\n    raise ValueError('Got invalid dimensions for input')\n", ours)
    monkeypatch.setattr(Scorer, "run_batch", ours["run_batch"])
    code, out, err = run_cli(capsys, "rerank", str(v1_artifact), "--query", QUERY, str(docs_file), "--providers", "cpu")
    assert code == 1 and out == ""
    one_error_line(err, "internal error: ValueError", "rerun with -v")


def test_non_finite_scores_are_exit_1_with_their_message(
    v1_artifact: Path, docs_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Scorer.run_batch
    monkeypatch.setattr(Scorer, "run_batch", lambda self, ids, mask: real(self, ids, mask) * np.nan)
    code, out, err = run_cli(capsys, "rerank", str(v1_artifact), "--query", QUERY, str(docs_file), "--providers", "cpu")
    assert code == 1 and out == ""
    line = one_error_line(err, "non-finite scores", "dtype fp32")
    assert "internal error" not in line


# -- a user's mistake is named as one --------------------------------------------------------------------------------


def test_validate_against_a_checkpoint_of_the_other_family_names_both(
    v2_artifact: Path, v1_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "validate", str(v2_artifact), "--reference", str(v1_checkpoint))
    assert code == 2 and out == ""
    one_error_line(err, "--reference", "v1 checkpoint (DebertaV2ForSequenceClassification)",
                   "v2 artifact (Qwen2ForCausalLM)")


def test_user_paths_fail_before_torch_is_imported(v2_artifact: Path, v1_checkpoint: Path, tmp_path: Path) -> None:
    """`export ./does-not-exist` took 7 s to say so: the path is checked before torch/transformers load."""
    code = (
        "import sys\n"
        "from mxbai_integrations.cli import main\n"
        f"assert main(['export', {str(tmp_path / 'does-not-exist')!r}, {str(tmp_path / 'out')!r}]) == 2\n"
        f"assert main(['export', {str(v2_artifact / MODEL_NAME)!r}, {str(tmp_path / 'out')!r}]) == 2\n"
        f"assert main(['validate', {str(v2_artifact)!r}, '--reference', {str(v1_checkpoint)!r}]) == 2\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=ENV,
                          check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "does-not-exist' does not exist" in lines[0] and "is a file, not a checkpoint directory" in lines[1]
    assert not (tmp_path / "out").exists()


def test_export_into_a_non_empty_directory_says_force_in_cli_words(
    v1_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine", encoding="utf-8")
    code, _, err = run_cli(capsys, "export", str(v1_checkpoint), str(out_dir), "-q")
    assert code == 2
    line = one_error_line(err, "OUT_DIR", "is not empty", "--force")
    assert "force=True" not in line
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    code, _, err = run_cli(capsys, "export", str(v1_checkpoint), str(tmp_path / "a-file"), "-q")
    assert code == 2
    one_error_line(err, "OUT_DIR", "is not a directory")


def test_info_on_a_file_says_it_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    code, out, err = run_cli(capsys, "info", str(tmp_path / "a-file"))
    assert code == 2 and out == ""
    line = one_error_line(err, "a-file", "is a file")
    assert "does not exist" not in line


def test_info_on_a_truncated_artifact_prints_the_error_alone(
    v1_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    art = Path(shutil.copytree(v1_artifact, tmp_path / "art"))
    with (art / MODEL_NAME).open("r+b") as handle:
        handle.truncate(1000)
    for extra in ([], ["--json"], ["--checksums"]):
        code, out, err = run_cli(capsys, "info", str(art), *extra)
        assert code == 1 and out == ""  # no summary of an artifact that cannot be loaded
        one_error_line(err, MODEL_NAME, "corrupt")


def test_info_checksums_says_they_were_verified(v1_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = len(read_manifest(v1_artifact).files)
    code, out, _ = run_cli(capsys, "info", str(v1_artifact), "--checksums")
    assert code == 0
    assert f"checksums     sha256 of all {files} files" in out and "verified against the manifest" in out
    code, out, _ = run_cli(capsys, "info", str(v1_artifact))
    assert code == 0 and "checksums" not in out


# -- serve: bind first, then announce ------------------------------------------------------------------------


def test_serve_on_a_busy_port_is_one_line_exit_2_and_never_announced(
    v1_artifact: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("fastapi")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_cli(capsys, "serve", str(v1_artifact), "--port", str(port), "--providers", "cpu")
    assert code == 2 and out == ""
    line = one_error_line(err, f"127.0.0.1:{port}", "already in use", "--port")
    assert "serving" not in err and "internal" not in line


def test_serve_announces_only_once_the_socket_is_bound(
    v1_artifact: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    from mxbai_integrations.serve import app as app_module

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    calls: list[dict[str, Any]] = []

    def fake_run_server(app: Any, **kwargs: Any) -> None:
        sock = kwargs["sock"]
        assert sock.getsockname() == ("127.0.0.1", port)  # bound, and ours, before the announcement
        assert f"serving tiny-v1 (v1 fp32, CPUExecutionProvider) on http://127.0.0.1:{port}" in capsys.readouterr().err
        calls.append(kwargs)

    monkeypatch.setattr(app_module, "run_server", fake_run_server)
    code = cli.main(["serve", str(v1_artifact), "--port", str(port), "--providers", "cpu", "--graceful-timeout", "4"])
    assert code == 0 and len(calls) == 1
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == port and calls[0]["sock"].fileno() == -1  # closed
    assert calls[0]["graceful_timeout_s"] == 4.0 and calls[0]["header_timeout_s"] == 10.0  # ServerOptions' fields


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may listen on any port")
def test_serve_on_a_privileged_port_is_one_line_exit_2(v1_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    code, _, err = run_cli(capsys, "serve", str(v1_artifact), "--port", "1")
    assert code == 2
    one_error_line(err, "no permission", "--port")


def test_ray_flags_without_ray_are_refused(v1_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    code, _, err = run_cli(capsys, "serve", str(v1_artifact), "--replicas", "2")
    assert code == 2
    one_error_line(err, "--replicas needs --ray")


# -- providers and installs, as the CLI shows them ------------------------------------


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_allow_fallback_on_a_cpu_only_build_runs_with_one_warning_line(v1_artifact: Path, docs_file: Path) -> None:
    script = Path(sys.executable).parent / "mxbai-onnx"
    done = subprocess.run([str(script), "rerank", str(v1_artifact), "--query", QUERY, str(docs_file), "--json",
                           "--providers", "cuda", "--allow-fallback"], capture_output=True, text=True, env=ENV,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert [r["index"] for r in json.loads(done.stdout)] == [
        r.index for r in MxbaiReranker(v1_artifact, providers=["cpu"]).rank(QUERY, DOCS)]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr  # the library warns and logs it: shown once
    assert lines[0].startswith("mxbai-onnx: warning: providers: ['CUDAExecutionProvider'] not offered")
    assert "CPUExecutionProvider" in lines[0]


def test_a_checkpoint_without_the_export_extra_says_how_to_export_it(
    v1_checkpoint: Path, docs_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "transformers") else real(name, *a))
    code, out, err = run_cli(capsys, "rerank", str(v1_checkpoint), "--query", QUERY, str(docs_file),
                             "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and out == ""
    one_error_line(err, "mxbai-onnx export", 'pip install "mxbai-integrations[export]"')
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.onnx"))


def test_first_use_export_through_rerank_shows_only_our_progress_bar(
    v1_checkpoint: Path, docs_file: Path, tmp_path: Path
) -> None:
    """rerank ./checkpoint exports on first use (MxbaiReranker -> resolve -> export_model): no library chatter."""
    script = Path(sys.executable).parent / "mxbai-onnx"
    done = subprocess.run([str(script), "rerank", str(v1_checkpoint), "--query", QUERY, str(docs_file),
                           "--cache-dir", str(tmp_path / "cache"), "--providers", "cpu"],
                          capture_output=True, text=True, env=ENV, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1 + len(DOCS)
    shown = [part.strip() for part in done.stderr.replace("\r", "\n").splitlines() if part.strip()]
    assert shown and all(part.startswith("export v1 fp32:") for part in shown), shown
