"""What the CLI writes, and what it lets libraries write: one line per message, ours first.

Results go to stdout; messages, warnings and progress bars to stderr, one line each, prefixed with
``mxbai-onnx:``. Library logging and Python warnings are shown once each (a provider fallback is
both warned and logged by the library: the user sees it once), and the build tools' own chatter is
kept out unless ``-v``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

PROG = "mxbai-onnx"


def one_line(message: object) -> str:
    """Exception texts from deep libraries can span lines; the CLI promises one."""
    return " ".join(str(message).split())


def write(text: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(text)


def error(message: object) -> None:
    write(f"{PROG}: error: {one_line(message)}\n", sys.stderr)


def note(message: object) -> None:
    """One line of ours on stderr (what was written where, what is being served)."""
    write(f"{PROG}: {one_line(message)}\n", sys.stderr)


class _ShownOnce:
    """Texts already shown through one channel (warnings or logging), so the other stays quiet."""

    def __init__(self) -> None:
        self.warned: set[str] = set()
        self.logged: set[str] = set()


class _LoggedOnce(logging.Filter):
    """Pass only records that no library handler prints already, and that were not shown as a warning."""

    def __init__(self, shown: _ShownOnce) -> None:
        super().__init__()
        self.shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:  # huggingface_hub, transformers: they print it themselves
                return False
            if not logger.propagate:
                break
            logger = logger.parent
        text = one_line(record.getMessage())
        if text in self.shown.warned:
            return False
        self.shown.logged.add(text)
        return True


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: {record.levelname.lower()}: {one_line(record.getMessage())}"


@contextlib.contextmanager
def _one_line_warnings(shown: _ShownOnce) -> Iterator[None]:
    """Show library warnings (e.g. a GPU provider falling back) as one line each, not file:line dumps."""

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        text = one_line(message)
        if text in shown.logged or text in shown.warned:
            return
        shown.warned.add(text)
        write(f"{PROG}: warning: {text}\n", sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _cli_logging(verbose: bool, shown: _ShownOnce) -> Iterator[None]:
    """The CLI owns logging while it runs: WARNING (INFO with -v) on stderr, one line per record.

    Installed before any library is imported, so an import-time ``basicConfig`` (onnxruntime's
    MatMulNBits quantizer sets INFO on the root logger) cannot flood stderr; removed afterwards, so
    ``main()`` called from a notebook or a test leaves the host's logging as it was.
    """
    root = logging.getLogger()
    if root.handlers:  # embedded (pytest, a configured application): the host owns logging
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    handler.addFilter(_LoggedOnce(shown))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def cli_output(verbose: bool) -> Iterator[None]:
    """Logging and warnings as the CLI shows them, for the duration of one command."""
    shown = _ShownOnce()
    with _cli_logging(verbose, shown), _one_line_warnings(shown):
        yield


@contextlib.contextmanager
def build_tools_output(verbose: bool) -> Iterator[None]:
    """The build tools (torch, transformers, optimum) quiet unless ``-v``, around work that loads them.

    The single place where the CLI decides this for code it calls into ``onnx_export``: the library's
    own switch (``onnx_export.quiet.library_output``, which ``export_model(verbose=...)`` also uses).
    Enter it only after the user's paths are checked: it imports transformers.
    """
    from onnx_export.quiet import library_output

    with library_output(verbose):
        yield


def silence_stdout() -> None:
    """After a broken pipe (``| head``), keep Python quiet when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
