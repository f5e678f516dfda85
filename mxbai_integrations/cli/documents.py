"""Documents for ``rerank``: one per line, JSON lines with a ``"text"`` field, or a JSON array.

Files from Windows editors and spreadsheet exports start with a UTF-8 byte-order mark and end lines
with CRLF: both are read as if absent, so a BOM never turns a JSON lines file into raw text or
sticks to document 0. The format is detected from the input unless ``--jsonl``/``--lines`` says:

- JSON lines when the first non-blank line starts with ``{``. A line that is not valid JSON is an
  error naming it (and, when the format was detected, suggesting ``--lines``): never a silent fall
  back to reading JSON as text.
- a JSON array when the input starts with ``[`` followed by ``"``, ``{`` or ``]``: each element is a
  document, a string or an object with a ``"text"`` field (``["doc a", "doc b"]``,
  ``[{"id": 1, "text": "doc a"}]``); an index in the output is the position in the array.
- otherwise one document per line.

Blank lines are skipped, so an index in the output is the position among the documents read.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from mxbai_integrations.cli.errors import UsageError

BOM = "\ufeff"
FORMATS = ("auto", "jsonl", "lines")
# "[" then a string, an object or the end of an empty array: "[1] Paris ..." and "[Note] ..." stay text.
_JSON_ARRAY_START = re.compile(r"\A\s*\[\s*[\"{\]]")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _decode(data: bytes, name: str) -> str:
    if data.startswith(_UTF16_BOMS):
        raise UsageError(f"{name}: UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")  # drops a leading BOM
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_stdin(stdin: TextIO | None) -> str:
    stream = stdin if stdin is not None else sys.stdin
    if stream is None or stream.isatty():
        raise UsageError("no documents: give FILE, or pipe documents on stdin (one per line)")
    raw = getattr(stream, "buffer", None)
    if raw is not None:
        return _decode(raw.read(), "<stdin>")
    text = stream.read()
    return text[1:] if text.startswith(BOM) else text


def _read_file(file: str) -> str:
    path = Path(file).expanduser()
    if not path.exists():
        raise UsageError(f"documents file {file!r} does not exist")
    if path.is_dir():
        raise UsageError(f"documents file {file!r} is a directory")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read documents file {file!r}: {exc.strerror or exc}") from None
    return _decode(data, file)


def split_records(text: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; CRLF and LF end a line, U+2028 inside a line does not."""
    # str.splitlines() would also split on U+2028 and friends inside a document.
    lines = (line[:-1] if line.endswith("\r") else line for line in text.split("\n"))
    return [(number, line) for number, line in enumerate(lines, 1) if line.strip()]


def _text_field(record: Any, where: str) -> str:
    if not isinstance(record, dict) or "text" not in record:
        raise UsageError(f'{where}: expected a JSON object with a "text" field')
    if not isinstance(record["text"], str):
        raise UsageError(f'{where}: "text" must be a string, got {type(record["text"]).__name__}')
    return record["text"]


def _json_lines(rows: list[tuple[int, str]], name: str, *, detected: bool) -> list[str]:
    hint = ("; the input was read as JSON lines because its first line starts with '{': pass --lines to "
            "read one document per line") if detected else ""
    documents = []
    for number, line in rows:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{name}:{number}: not valid JSON ({exc.msg} at column {exc.colno}){hint}") from None
        documents.append(_text_field(record, f"{name}:{number}"))
    return documents


def _json_array(text: str, name: str) -> list[str]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name}:{exc.lineno}: not a valid JSON array ({exc.msg} at column {exc.colno}); the "
                         "input was read as a JSON array because it starts with '[': pass --lines to read one "
                         "document per line") from None
    documents = []
    for i, item in enumerate(items):
        documents.append(item if isinstance(item, str) else _text_field(item, f"{name}: element {i}"))
    if not documents:
        raise UsageError(f"{name}: no documents (the JSON array is empty)")
    return documents


def read_documents(file: str | None, fmt: str = "auto", stdin: TextIO | None = None) -> list[str]:
    """Read documents from FILE or stdin (absent or ``-``), in the format given or detected.

    Args:
        file: a path, or None / ``"-"`` for stdin.
        fmt: ``"auto"`` (detect JSON lines, a JSON array or plain lines), ``"jsonl"`` or ``"lines"``.
        stdin: the stream to read instead of ``sys.stdin`` (tests).

    Raises:
        UsageError: no input, not UTF-8, a malformed JSON line or array (named by line), no documents.

    Examples:
        >>> Path("docs.jsonl").write_bytes(b'\\xef\\xbb\\xbf{"text": "a"}\\r\\n{"text": "b"}\\r\\n')  # doctest: +SKIP
        >>> read_documents("docs.jsonl")  # doctest: +SKIP
        ['a', 'b']
    """
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {FORMATS}, got {fmt!r}")
    from_stdin = file is None or file == "-"
    name = "<stdin>" if from_stdin else str(file)
    text = _read_stdin(stdin) if from_stdin else _read_file(str(file))
    rows = split_records(text)
    if not rows:
        raise UsageError(f"{name}: no documents (the input is empty)")
    if fmt == "auto" and _JSON_ARRAY_START.match(text):
        return _json_array(text, name)
    if fmt == "lines" or (fmt == "auto" and not rows[0][1].lstrip().startswith("{")):
        return [line for _, line in rows]
    return _json_lines(rows, name, detected=fmt == "auto")
