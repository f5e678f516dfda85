"""The ``mxbai-onnx`` CLI: in-process through ``main([...])`` and once through the installed console script.

User mistakes must end in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mxbai_integrations import MxbaiReranker, RerankerOptions, cli
from mxbai_integrations.artifact import MANIFEST_NAME, read_manifest
from mxbai_integrations.options import dataclass_from_cli
from mxbai_integrations.serve.config import BatchOptions, ServeLimits, ServerOptions

QUERY = "What is the capital of France?"
DOCS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower was completed in 1889.",
    "Bananas are a good source of potassium.",
    "France borders Belgium, Germany, Switzerland, Italy and Spain.",
]


def console_script() -> Path:
    """The ``mxbai-onnx`` entry point pip installed beside this interpreter."""
    script = Path(sys.executable).parent / ("mxbai-onnx.exe" if os.name == "nt" else "mxbai-onnx")
    assert script.is_file(), f"{script} missing: install the package (pip install -e .)"
    return script


def run_script(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run([str(console_script()), *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600, check=False)


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("mxbai-onnx: error: ")
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.fixture()
def docs_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    return path


@functools.cache
def reference_reranker(artifact: Path) -> MxbaiReranker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the --no-validate export here is unvalidated on purpose
        return MxbaiReranker(artifact, providers=["CPUExecutionProvider"])


def expected(artifact: Path, **kwargs: object) -> list[dict[str, object]]:
    """What the Python API returns for the same input: the CLI must print exactly this."""
    results = reference_reranker(artifact).rank(QUERY, DOCS, **kwargs)
    return [{"index": r.index, "score": r.score, "document": r.document} for r in results]


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------- console script


def test_console_script_export_info_rerank(v1_checkpoint: Path, tmp_path: Path, docs_file: Path) -> None:
    out_dir = tmp_path / "tiny-v1-onnx"
    done = run_script("export", str(v1_checkpoint), str(out_dir), "--no-validate")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"wrote {out_dir}" in done.stdout
    assert (out_dir / MANIFEST_NAME).is_file()

    info = run_script("info", str(out_dir))
    assert info.returncode == 0, info.stderr
    assert "family        v1" in info.stdout
    assert "validation    skipped" in info.stdout

    want = expected(out_dir)
    from_file = run_script("rerank", str(out_dir), "--query", QUERY, str(docs_file), "--json")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout) == want

    from_stdin = run_script("rerank", str(out_dir), "--query", QUERY, stdin="\n".join(DOCS) + "\n")
    assert from_stdin.returncode == 0, from_stdin.stderr
    rows = from_stdin.stdout.splitlines()
    assert rows[0].split() == ["rank", "index", "score", "document"]
    assert [int(row.split()[1]) for row in rows[1:]] == [r["index"] for r in want]
    assert [float(row.split()[2]) for row in rows[1:]] == pytest.approx([r["score"] for r in want], abs=1e-4)

    again = run_script("export", str(v1_checkpoint), str(out_dir), "--no-validate")
    assert again.returncode == 2
    assert_one_line_error(again.stderr, "is not empty", "--force")

    bad = run_script("rerank", str(tmp_path / "no-such-model"), "--query", QUERY, str(docs_file))
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "no-such-model")


def test_rerank_and_info_do_not_import_torch(v1_artifact: Path, docs_file: Path) -> None:
    """The CLI lives in the run-time package: only export/validate may pull in the build-time stack."""
    code = (
        "import sys\n"
        "from mxbai_integrations.cli import main\n"
        f"assert main(['info', {str(v1_artifact)!r}]) == 0\n"
        f"assert main(['rerank', {str(v1_artifact)!r}, '--query', 'q', {str(docs_file)!r}]) == 0\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'optimum', 'onnx_export') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for command in ("export", "rerank", "info", "validate"):
        assert command in out
    code, out, _ = run_main(capsys, "--version")
    assert code == 0 and out.startswith("mxbai-onnx ")


def test_reranker_flags_are_one_definition_with_the_records_defaults() -> None:
    """rerank, serve and eval take the same reranker flags, generated from RerankerOptions, with its defaults."""
    parser = cli.build_parser()
    commands = {"rerank": ["rerank", "m", "--query", "q"], "serve": ["serve", "m"],
                "eval": ["eval", "m", "--data", "d"]}
    for argv in commands.values():
        assert RerankerOptions.from_cli(parser.parse_args(argv)) == RerankerOptions()
        flags = ["--providers", "cuda,cpu", "--dtype", "fp16", "--batch-size", "8", "--max-length", "64",
                 "--max-batch-tokens", "512", "--allow-fallback", "--cache-dir", "/tmp/c", "--threads", "2",
                 "--no-verify"]
        assert RerankerOptions.from_cli(parser.parse_args(argv + flags)) == RerankerOptions(
            providers=["cuda", "cpu"], dtype="fp16", batch_size=8, max_length=64, max_batch_tokens=512,
            allow_fallback=True, cache_dir="/tmp/c", intra_op_num_threads=2, verify=False)
    serve = parser.parse_args(commands["serve"])
    assert dataclass_from_cli(ServeLimits, serve) == ServeLimits()
    assert dataclass_from_cli(BatchOptions, serve) == BatchOptions()
    assert dataclass_from_cli(ServerOptions, serve) == ServerOptions()
    serve = parser.parse_args([*commands["serve"], "--max-gather-tokens", "1000", "--max-batch-tokens", "512",
                               "--max-query-chars", "50", "--no-batching", "--graceful-timeout", "3",
                               "--header-timeout", "2"])
    assert dataclass_from_cli(BatchOptions, serve).max_batch_tokens == 1000
    assert RerankerOptions.from_cli(serve).max_batch_tokens == 512
    assert dataclass_from_cli(ServeLimits, serve).max_query_chars == 50
    assert dataclass_from_cli(ServerOptions, serve) == ServerOptions(graceful_timeout_s=3.0, header_timeout_s=2.0)
    assert (serve.no_batching, serve.host, serve.port) == (True, "127.0.0.1", 8000)


def test_package_keeps_its_public_names() -> None:
    for name in ("main", "read_documents", "format_table", "build_parser", "is_user_mistake", "validation_lines",
                 "UsageError"):
        assert callable(getattr(cli, name)), name
    done = subprocess.run([sys.executable, "-m", "mxbai_integrations.cli", "--version"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.startswith("mxbai-onnx ")


# --------------------------------------------------------------------------------------------- rerank


def test_rerank_table_matches_reranker(v2_artifact: Path, docs_file: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    code, out, err = run_main(capsys, "rerank", str(v2_artifact), "--query", QUERY, str(docs_file))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "index", "score", "document"]
    want = expected(v2_artifact)
    assert [int(line.split()[1]) for line in lines[1:]] == [r["index"] for r in want]
    assert all(len(line) <= 60 for line in lines)
    assert any(line.endswith("…") for line in lines[1:])  # long documents are cut to the width


@pytest.mark.parametrize("options", [
    {},
    {"top_k": 2},
    {"instruction": "Find the document that answers the question."},
    {"normalize": True, "top_k": 3},
])
def test_rerank_json_matches_reranker(v2_artifact: Path, docs_file: Path, capsys: pytest.CaptureFixture[str],
                                      options: dict[str, object]) -> None:
    args = ["rerank", str(v2_artifact), "--query", QUERY, str(docs_file), "--json"]
    if "top_k" in options:
        args += ["--top-k", str(options["top_k"])]
    if "instruction" in options:
        args += ["--instruction", str(options["instruction"])]
    if options.get("normalize"):
        args.append("--normalize")
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    assert json.loads(out) == expected(v2_artifact, **options)


def test_rerank_reads_stdin(v1_artifact: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    for file_args in ([], ["-"]):
        monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(DOCS) + "\n"))
        code, out, err = run_main(capsys, "rerank", str(v1_artifact), "--query", QUERY, "--json", *file_args)
        assert code == 0, err
        assert json.loads(out) == expected(v1_artifact)


def test_rerank_jsonl_detected_and_forced(v1_artifact: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"id": i, "text": d}) + "\n\n" for i, d in enumerate(DOCS)), encoding="utf-8")
    for extra in ([], ["--jsonl"]):
        code, out, err = run_main(capsys, "rerank", str(v1_artifact), "--query", QUERY, str(jsonl), "--json", *extra)
        assert code == 0, err
        assert json.loads(out) == expected(v1_artifact)
    # --lines keeps JSON-looking lines as plain text documents.
    code, out, err = run_main(capsys, "rerank", str(v1_artifact), "--query", QUERY, str(jsonl), "--json", "--lines")
    assert code == 0, err
    assert sorted(r["document"] for r in json.loads(out)) == sorted(
        json.dumps({"id": i, "text": d}) for i, d in enumerate(DOCS))


def test_read_documents_keeps_unicode_line_separators(tmp_path: Path) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("one\u2028still one\r\ntwo\n\n", encoding="utf-8")
    assert cli.read_documents(str(path)) == ["one\u2028still one", "two"]


@pytest.mark.parametrize(("content", "fragments"), [
    ('{"text": "fine"}\n{"text": "also fine"}\n{"text": oops}\n', ("docs.jsonl:3:", "not valid JSON")),
    ('{"text": "fine"}\n\n{"body": "no text field"}\n', ("docs.jsonl:3:", '"text" field')),
    ('{"text": "fine"}\n{"text": 42}\n', ("docs.jsonl:2:", "must be a string")),
    ("\n  \n", ("no documents",)),
])
def test_rerank_bad_documents_file(v1_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   content: str, fragments: tuple[str, ...]) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(content, encoding="utf-8")
    code, out, err = run_main(capsys, "rerank", str(v1_artifact), "--query", QUERY, str(path))
    assert code == 2 and out == ""
    assert_one_line_error(err, *fragments)


def test_rerank_user_mistakes(v1_artifact: Path, tmp_path: Path, docs_file: Path,
                              capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "not-an-artifact").mkdir()
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    cases = [
        (["rerank", str(v1_artifact), "--query", QUERY, str(tmp_path / "missing.txt")],
         ("missing.txt", "does not exist")),
        (["rerank", str(v1_artifact), "--query", QUERY, str(tmp_path)], ("is a directory",)),
        (["rerank", str(v1_artifact), "--query", QUERY, str(tmp_path / "latin1.txt")], ("not UTF-8",)),
        (["rerank", str(tmp_path / "no-such-dir"), "--query", QUERY, str(docs_file)], ("no-such-dir",)),
        (["rerank", str(tmp_path / "not-an-artifact"), "--query", QUERY, str(docs_file)], ("mxbai_onnx.json",)),
        (["rerank", str(v1_artifact), "--query", "  ", str(docs_file)], ("--query",)),
        (["rerank", str(v1_artifact), "--query", QUERY, "--instruction", "x", str(docs_file)], ("v2",)),
        (["rerank", str(v1_artifact), "--query", QUERY, "--providers", "cuda", str(docs_file)],
         ("CUDAExecutionProvider",)),
    ]
    for args, fragments in cases:
        code, out, err = run_main(capsys, *args)
        assert code == 2, (args, err)
        assert out == ""
        assert_one_line_error(err, *fragments)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run_main(capsys, "rerank", str(v1_artifact), "--query", QUERY)
    assert code == 2
    assert_one_line_error(err, "<stdin>", "no documents")


def test_argparse_errors_exit_2(v1_artifact: Path, docs_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["rerank", str(v1_artifact), str(docs_file)],  # no --query
                 ["rerank", str(v1_artifact), "--query", QUERY, "--top-k", "0", str(docs_file)],
                 ["rerank", str(v1_artifact), "--query", QUERY, str(docs_file), "extra"],
                 ["frobnicate"]):
        code, _, err = run_main(capsys, *args)
        assert code == 2
        assert "Traceback" not in err and "error:" in err


# ------------------------------------------------------------------------------------- info / validate


def test_info_summary_and_json(v2_artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "info", str(v2_artifact))
    assert code == 0, err
    for fragment in ("family        v2", "dtype         fp32, opset", "max_length    8192", "validation    passed",
                     "token ids equal: yes", "multilingual"):
        assert fragment in out
    code, out, err = run_main(capsys, "info", str(v2_artifact), "--json", )
    assert code == 0, err
    data = json.loads(out)
    assert data["family"] == "v2" and data["validation"] == read_manifest(v2_artifact).validation.to_dict()


def test_info_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "info", str(tmp_path / "nope"))
    assert code == 2
    assert_one_line_error(err, "nope")
    code, _, err = run_main(capsys, "info", str(tmp_path))
    assert code == 2
    assert_one_line_error(err, "mxbai_onnx.json")
    (tmp_path / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    code, _, err = run_main(capsys, "info", str(tmp_path))
    assert code == 2
    assert_one_line_error(err, "not valid JSON")


def test_validate_passes_and_fails(v1_artifact: Path, v1_checkpoint: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "validate", str(v1_artifact), "--reference", str(v1_checkpoint))
    assert code == 0, err
    assert "validation    passed" in out
    from random_models import build_v1_checkpoint

    other = build_v1_checkpoint(tmp_path / "other-v1", seed=1)
    code, out, err = run_main(capsys, "validate", str(v1_artifact), "--reference", str(other), "--json")
    assert code == 1
    assert json.loads(out)["passed"] is False


# --------------------------------------------------------------------------------------------- export


def test_export_out_dir_not_empty(v1_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine", encoding="utf-8")
    code, _, err = run_main(capsys, "export", str(v1_checkpoint), str(out_dir), "--no-validate", "-q")
    assert code == 2
    assert_one_line_error(err, "not empty", "--force")
    assert (out_dir / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_export_user_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "no-config").mkdir()
    code, _, err = run_main(capsys, "export", str(tmp_path / "no-config"), str(tmp_path / "out"), "-q")
    assert code == 2
    assert_one_line_error(err, "config")
    code, _, err = run_main(capsys, "export", str(tmp_path / "no-config"), str(tmp_path / "out"), "--dtype", "int4")
    assert code == 2 and "Traceback" not in err


def test_export_without_extra_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    code, _, err = run_main(capsys, "export", "some/model", str(tmp_path / "out"))
    assert code == 2
    assert_one_line_error(err, "torch", 'pip install "mxbai-integrations[export]"')
    assert not (tmp_path / "out").exists()
