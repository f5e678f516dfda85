"""``mxbai-onnx``: export checkpoints, inspect artifacts, rerank, serve and evaluate from the shell.

The people typing these commands are using the library, not debugging it: a user mistake (a
missing file, a bad JSON line, an unknown model, an empty input) ends in one line on stderr and
exit status 2, never a traceback. A check that ran and refused (validation, non-finite scores)
exits 1 with its own message, and so does an internal error (one line; the traceback with -v),
which is never reported as a usage error. ``errors.py`` decides which is which, by type.

The package is cut along its seams: ``parser`` (flags), ``documents`` (rerank's input),
``render`` (tables and summaries), ``console`` (what reaches the terminal), ``errors`` (exit
statuses), ``preflight`` (path and extra checks before heavy imports), and one module per command.
It belongs to the torch-free run-time package: the build-time ``onnx_export`` is imported only
inside the commands that need it.

Examples:
    >>> from mxbai_integrations.cli import main
    >>> main(["info", "./mxbai-rerank-base-v2-onnx"])  # doctest: +SKIP
    artifact      /home/me/mxbai-rerank-base-v2-onnx (format 1)
    ...
    0
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from mxbai_integrations.cli import evaluate, export, info, push, rerank, serve, validate
from mxbai_integrations.cli.console import PROG, cli_output, error, silence_stdout, write
from mxbai_integrations.cli.documents import read_documents
from mxbai_integrations.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    classify,
    is_user_mistake,
)
from mxbai_integrations.cli.parser import build_parser
from mxbai_integrations.cli.render import format_table, validation_lines

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "UsageError",
    "build_parser",
    "format_table",
    "is_user_mistake",
    "main",
    "read_documents",
    "validation_lines",
]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "export": export.run,
    "rerank": rerank.run,
    "serve": serve.run,
    "info": info.run,
    "validate": validate.run,
    "eval": evaluate.run,
    "push": push.run,
}
# Arguments that name paths: an OS error about one of them (or a file inside it) is the user's.
PATH_ARGUMENTS = ("model", "models", "file", "source", "out_dir", "data", "run", "save_runs", "plot", "reference",
                  "cache_dir")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    # argparse binds the optional FILE too early in `rerank MODEL --query Q FILE` (it matches
    # MODEL and an empty FILE together); take a single leftover positional as FILE.
    if (extras and args.command == "rerank" and args.file is None and len(extras) == 1
            and (extras[0] == "-" or not extras[0].startswith("-"))):
        args.file, extras = extras[0], []
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def user_paths(args: argparse.Namespace) -> list[str]:
    """The paths the user typed, for telling their OS errors from the environment's."""
    out: list[str] = []
    for name in PATH_ARGUMENTS:
        value = getattr(args, name, None)
        out += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mxbai-onnx`` console script; returns the exit status."""
    try:
        args = _parse(argv)
    except SystemExit as exc:  # --help, --version, and argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with cli_output(args.verbose):
            return int(COMMANDS[args.command](args))
    except BrokenPipeError:
        # The reader went away (`| head`): not an error worth a message; keep Python quiet at exit.
        silence_stdout()
        return EXIT_FAILED
    except KeyboardInterrupt:
        write("\n", sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        code, message, internal = classify(exc, user_paths(args))
        if internal and not args.verbose:
            message += " (rerun with -v for the traceback)"
        error(message)
        if internal and args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        return code
