"""``mxbai-onnx rerank``'s documents reader: BOMs, CRLF, JSON lines, JSON arrays, and errors that name the line.

A UTF-8 byte-order mark used to turn a JSON lines file into raw-text documents without a word (the
first line no longer started with ``{``), and a JSON array was one document. Each case here is
checked against the documents the file holds, written by the test itself.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from mxbai_integrations import MxbaiReranker, cli
from mxbai_integrations.cli.documents import read_documents

DOCS = ["Paris is the capital of France.", "Berlin is the capital of Germany.", 'A "quoted" word, and {braces}.']
BOM = b"\xef\xbb\xbf"


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def jsonl_bytes(newline: str = "\n") -> bytes:
    return "".join(json.dumps({"id": i, "text": d}) + newline for i, d in enumerate(DOCS)).encode("utf-8")


def plain_bytes(newline: str = "\n") -> bytes:
    return "".join(d + newline for d in DOCS).encode("utf-8")


@pytest.mark.parametrize(("name", "data"), [
    ("jsonl", jsonl_bytes()),
    ("bom+jsonl", BOM + jsonl_bytes()),
    ("bom+jsonl+crlf", BOM + jsonl_bytes("\r\n")),
    ("plain", plain_bytes()),
    ("bom+plain", BOM + plain_bytes()),
    ("plain+crlf", plain_bytes("\r\n")),
    ("bom+plain+crlf", BOM + plain_bytes("\r\n")),
    ("json array of strings", json.dumps(DOCS).encode()),
    ("bom+json array of objects, pretty", BOM + json.dumps([{"text": d} for d in DOCS], indent=2).encode()),
    ("json array, crlf", json.dumps(DOCS, indent=1).replace("\n", "\r\n").encode()),
])
def test_every_format_reads_the_same_documents(tmp_path: Path, name: str, data: bytes) -> None:
    assert read_documents(write(tmp_path, "docs", data)) == DOCS


def test_bom_and_crlf_on_stdin_bytes_and_text(monkeypatch: pytest.MonkeyPatch) -> None:
    class BinaryStdin(io.TextIOWrapper):
        def isatty(self) -> bool:
            return False

    stdin = BinaryStdin(io.BytesIO(BOM + jsonl_bytes("\r\n")), encoding="utf-8")
    assert read_documents(None, stdin=stdin) == DOCS
    assert read_documents("-", stdin=io.StringIO("\ufeff" + plain_bytes("\r\n").decode())) == DOCS


def test_plain_text_that_starts_with_a_bracket_stays_text(tmp_path: Path) -> None:
    docs = ["[1] Paris is the capital of France.", "[Note] Berlin is in Germany."]
    assert read_documents(write(tmp_path, "docs.txt", "\n".join(docs).encode())) == docs


def test_forced_formats_win_over_detection(tmp_path: Path) -> None:
    array = write(tmp_path, "array.json", json.dumps(DOCS).encode())
    assert read_documents(array, "lines") == [json.dumps(DOCS)]
    jsonl = write(tmp_path, "docs.jsonl", BOM + jsonl_bytes())
    assert read_documents(jsonl, "lines") == [json.dumps({"id": i, "text": d}) for i, d in enumerate(DOCS)]
    assert read_documents(jsonl, "jsonl") == DOCS


@pytest.mark.parametrize(("data", "fmt", "fragments", "absent"), [
    # a broken first JSON line: never read as text, named, and --lines suggested
    (BOM + b'{"text": "fine"\n{"text": "also fine"}\n', "auto", ("docs:1:", "not valid JSON", "--lines"), ()),
    (b'{"text": oops}\r\n', "auto", ("docs:1:", "not valid JSON", "--lines"), ()),
    # with --jsonl the format was the user's choice: no hint to undo it
    (b'{"text": oops}\n', "jsonl", ("docs:1:", "not valid JSON"), ("--lines",)),
    (b'["a", "b",]', "auto", ("docs:1:", "not a valid JSON array", "--lines"), ()),
    (b'["a", 3]', "auto", ("element 1", '"text" field'), ()),
    (b'[{"text": "a"}, {"body": "b"}]', "auto", ("element 1", '"text" field'), ()),
    (b"[]", "auto", ("no documents", "empty"), ()),
    (BOM + b"\r\n  \r\n", "auto", ("no documents",), ()),
    (b"\xff\xfep\x00a\x00", "auto", ("UTF-16", "UTF-8"), ()),
])
def test_malformed_input_is_one_usage_error_naming_the_place(tmp_path: Path, data: bytes, fmt: str,
                                                             fragments: tuple[str, ...],
                                                             absent: tuple[str, ...]) -> None:
    with pytest.raises(cli.UsageError) as info:
        read_documents(write(tmp_path, "docs", data), fmt)
    for fragment in fragments:
        assert fragment in str(info.value)
    for fragment in absent:
        assert fragment not in str(info.value)


def test_rerank_ranks_the_texts_of_a_bom_jsonl_file_and_of_a_json_array(
    v1_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the ranked documents are the "text" fields, scored as the Python API scores them."""
    want = [{"index": r.index, "score": r.score, "document": r.document}
            for r in MxbaiReranker(v1_artifact, providers=["cpu"]).rank("capital of France", DOCS)]
    for path in (write(tmp_path, "docs.jsonl", BOM + jsonl_bytes("\r\n")),
                 write(tmp_path, "docs.json", BOM + json.dumps([{"text": d} for d in DOCS]).encode())):
        code = cli.main(["rerank", str(v1_artifact), "--query", "capital of France", path, "--json",
                         "--providers", "cpu"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert json.loads(out) == want
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": broken\n'))
    assert cli.main(["rerank", str(v1_artifact), "--query", "q", "--providers", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "<stdin>:1: not valid JSON" in err and "--lines" in err
