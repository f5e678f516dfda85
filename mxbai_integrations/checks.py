"""Argument checks shared by every entry point, raised where the input enters and naming the argument.

One definition each, so the library, the adapters, the server and the CLI reject the same inputs with
the same words.

Examples:
    >>> from mxbai_integrations.checks import check_positive_int
    >>> check_positive_int("top_k", 0)
    Traceback (most recent call last):
    ...
    mxbai_integrations.errors.ArgumentError: top_k must be a positive int or None, got 0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mxbai_integrations.errors import ArgumentError, ArgumentTypeError


def check_positive_int(name: str, value: Any, *, allow_none: bool = True) -> int | None:
    """``value`` if it is an int > 0 (``bool`` is not an int here), else ArgumentError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArgumentError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_non_negative_int(name: str, value: Any) -> int:
    """``value`` if it is an int >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{name} must be an int >= 0, got {value!r}")
    return value


LONG_DOCUMENTS = ("truncate", "max_chunk")


def check_long_documents(value: Any) -> str:
    """How documents longer than max_length are scored: "truncate" (the reference) or "max_chunk"."""
    if value not in LONG_DOCUMENTS:
        raise ArgumentError(f"long_documents must be one of {LONG_DOCUMENTS}, got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a real bool (not 0/1, not "true")."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_query(query: Any) -> str:
    """A query is a string with something in it besides white space."""
    if not isinstance(query, str):
        raise ArgumentTypeError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ArgumentError("query must be a non-empty string")
    return query


def check_documents(documents: Any) -> list[str]:
    """Documents are a sequence of strings (a bare string is one mistake we name)."""
    if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
        raise ArgumentTypeError(f"documents must be a list of str, got {type(documents).__name__}")
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise ArgumentTypeError(f"documents[{i}] must be a str, got {type(doc).__name__}")
    return list(documents)


def check_instruction(instruction: Any, family: str) -> str | None:
    """An instruction is a string, and only v2 prompts have a place for it."""
    if instruction is None:
        return None
    if not isinstance(instruction, str):
        raise ArgumentTypeError(f"instruction must be a str or None, got {type(instruction).__name__}")
    if family == "v1":
        raise ArgumentError("instruction is only supported by v2 rerankers; this is a v1 (DeBERTa) model")
    return instruction
