"""``evaluate()``'s arguments, checked before any data are read or any model loads.

The reranker options come as one ``RerankerOptions`` record (or a dict of its fields), the same
record the CLI, the adapters and the server take; the loose ``providers`` / ``max_length`` /
``allow_fallback`` / ``batch_size`` parameters of earlier versions still work and are folded into
that one record. The same option given both ways with different values is an ``ArgumentError``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeAlias

from mxbai_integrations.checks import check_instruction, check_positive_int
from mxbai_integrations.errors import ArgumentError, ArgumentTypeError, ModelNotFoundError
from mxbai_integrations.eval.metrics import STAT_TESTS
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.reranker import MxbaiReranker
from mxbai_integrations.resolve import looks_like_path

ModelSpec: TypeAlias = "MxbaiReranker | str | os.PathLike[str]"


def given_fields(options: RerankerOptions | Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields ``options`` sets: a dict's keys, or a record's fields that differ from the defaults."""
    if options is None:
        return {}
    if isinstance(options, RerankerOptions):
        defaults = RerankerOptions()
        return {f.name: getattr(options, f.name) for f in fields(RerankerOptions)
                if getattr(options, f.name) != getattr(defaults, f.name)}
    if not isinstance(options, Mapping):
        raise ArgumentTypeError(f"reranker_options must be a RerankerOptions, a dict or None, "
                                f"got {type(options).__name__}")
    return dict(options)


def reranker_options_from(options: RerankerOptions | Mapping[str, Any] | None, **loose: Any) -> RerankerOptions:
    """One ``RerankerOptions`` from ``reranker_options`` and the loose keyword parameters (None: not given).

    Raises:
        ArgumentError: an option given both ways with different values, or a bad value (named).

    Examples:
        >>> reranker_options_from({"providers": ["cpu"]}, batch_size=16, max_length=None).batch_size
        16
        >>> reranker_options_from({"batch_size": 8}, batch_size=16)
        Traceback (most recent call last):
        ...
        mxbai_integrations.errors.ArgumentError: batch_size: given as 16 and in reranker_options as 8; give it once
    """
    given = given_fields(options)
    loose = {name: value for name, value in loose.items() if value is not None}
    merged = RerankerOptions.from_dict({**given, **loose}, where="reranker_options")
    recorded = RerankerOptions.from_dict(given, where="reranker_options")
    for name in loose:
        if name in given and getattr(merged, name) != getattr(recorded, name):
            raise ArgumentError(f"{name}: given as {loose[name]!r} and in reranker_options as {given[name]!r}; "
                                "give it once")
    if isinstance(options, RerankerOptions) and not loose:
        return options
    return merged


def check_models(models: Any) -> list[ModelSpec]:
    """A list of rerankers or artifact paths; a mistyped path fails now, not after BM25 and ranx's warm-up."""
    if isinstance(models, (str, os.PathLike, MxbaiReranker)) or not isinstance(models, Sequence):
        models = [models]
    if not models:
        raise ArgumentError("models: give at least one reranker (an artifact directory or an MxbaiReranker)")
    for i, model in enumerate(models):
        if not isinstance(model, (MxbaiReranker, str, os.PathLike)):
            raise ArgumentTypeError(f"models[{i}] must be an MxbaiReranker or an artifact path, "
                                    f"got {type(model).__name__}")
        if not isinstance(model, MxbaiReranker):  # hub ids are left to the reranker
            text = os.fspath(model)
            if not Path(text).expanduser().is_dir() and (isinstance(model, os.PathLike) or looks_like_path(text)):
                raise ModelNotFoundError(f"model: {text!r} does not exist (expected an artifact directory or a hub id)")
    return list(models)


def check_arguments(*, depth: Any, limit_queries: Any, instruction: Any, stat_test: Any, max_p: Any) -> None:
    """The evaluation's own arguments, named in the error."""
    check_positive_int("depth", depth, allow_none=False)
    check_positive_int("limit_queries", limit_queries)
    # Type only: a v1 model among the models is scored without the instruction (and says so).
    check_instruction(instruction, "v2")
    if stat_test not in STAT_TESTS:
        raise ArgumentError(f"stat_test must be one of {STAT_TESTS}, got {stat_test!r}")
    if isinstance(max_p, bool) or not isinstance(max_p, (int, float)) or not 0 < max_p < 1:
        raise ArgumentError(f"max_p must be a number between 0 and 1, got {max_p!r}")


def check_names(models: Sequence[ModelSpec], names: Sequence[str] | None, taken: str) -> list[str]:
    """Run names of the models: given (checked), or their artifact directory names made unique."""
    if names is not None:
        if isinstance(names, str) or len(names) != len(models):
            raise ArgumentError(f"names must be a list of {len(models)} names, one per model, got {names!r}")
        if any(not isinstance(n, str) or not n.strip() for n in names):
            raise ArgumentError(f"names must be non-empty strings, got {names!r}")
        if len(set(names)) != len(names) or taken in names:
            raise ArgumentError(f"names must be unique and differ from the first stage's {taken!r}, got {names!r}")
        return list(names)
    out: list[str] = []
    for model in models:
        # abspath, not resolve(): a symlink keeps the name the user typed.
        path = model.path if isinstance(model, MxbaiReranker) else Path(os.path.abspath(Path(model).expanduser()))
        base = path.name
        name, n = base or "model", 2
        while name in out or name == taken:
            name, n = f"{base}-{n}", n + 1
        out.append(name)
    return out
