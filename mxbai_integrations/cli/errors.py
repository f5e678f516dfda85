"""Exit statuses decided by the type of what was raised, never by where in the stack it was raised.

Exit status 2 means "your input was wrong, fix it and run again": the CLI's own ``UsageError``, the
package's argument, artifact and provider errors, a missing extra, and an OS error about a path the
user gave. Exit status 1 means a check ran and refused (a failed export validation, non-finite
scores), said in the error's own words, or an internal error: anything else, including a
``ValueError`` from deep inside numpy or onnxruntime, which is a bug to report, not the user's
mistake.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mxbai_integrations.errors import (
    ArgumentError,
    ArtifactError,
    ExportError,
    MissingExtraError,
    ModelNotFoundError,
    NonFiniteScoreError,
    ProviderError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(ArgumentError):
    """A mistake in what the user gave the command; reported as one line with exit status 2."""


# The user's mistakes, by type. ModelNotFoundError is an ArgumentError already; it is listed because
# it is also a FileNotFoundError, and the reader should not have to know that to see it is exit 2.
USER_MISTAKES: tuple[type[BaseException], ...] = (
    UsageError, ArgumentError, ModelNotFoundError, ArtifactError, ProviderError, MissingExtraError,
)
# Checks that ran and refused: exit 1 with their own message, not "internal error".
REFUSALS: tuple[type[BaseException], ...] = (ExportError, NonFiniteScoreError)
# OS errors that can be about a path the user gave; others (a full disk, a broken driver) are the
# environment's.
USER_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError, IsADirectoryError,
)


def _inside(name: str | os.PathLike[str], roots: Iterable[Path]) -> bool:
    path = Path(os.path.abspath(Path(name).expanduser()))
    return any(path == root or root in path.parents for root in roots)


def is_user_path_error(exc: BaseException, user_paths: Iterable[str | os.PathLike[str]] = ()) -> bool:
    """An OS error about a path on the command line (or a file inside one).

    An error the OS raised names its file (``exc.filename``): it is the user's when that file is one
    of ``user_paths`` or lies inside one. One a check raised with its own sentence (``errno`` unset,
    e.g. export's "out_dir: ... is not empty") is about the argument it names.
    """
    if not isinstance(exc, USER_OS_ERRORS):
        return False
    if exc.errno is None:
        return True
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    roots = [Path(os.path.abspath(Path(p).expanduser())) for p in user_paths]
    return bool(names) and all(_inside(n, roots) for n in names)


def is_user_mistake(exc: BaseException, user_paths: Iterable[str | os.PathLike[str]] = ()) -> bool:
    """Exit status 2 (usage) or not: only mistakes in what the user gave get 2.

    Args:
        exc: what the command raised.
        user_paths: the paths given on the command line; an OS error about one of them is the user's.
    """
    return isinstance(exc, USER_MISTAKES) or is_user_path_error(exc, user_paths)


def classify(exc: BaseException, user_paths: Iterable[str | os.PathLike[str]] = ()) -> tuple[int, str, bool]:
    """(exit status, the one-line message, whether it is internal) for an exception that ended a command."""
    if is_user_mistake(exc, user_paths):
        return EXIT_USAGE, str(exc), False
    if isinstance(exc, REFUSALS):
        return EXIT_FAILED, str(exc), False
    return EXIT_FAILED, f"internal error: {type(exc).__name__}: {exc}", True
