"""``RerankerOptions``: how a reranker is loaded and run, defined once.

Every entry point takes the same record: ``MxbaiReranker(model, **options)``, the adapters'
``reranker_kwargs``, the server's and Ray's ``reranker_options``, ``evaluate()``, and the CLI,
whose flags are generated from these fields (vLLM's ``EngineArgs`` pattern), so a new option is
one field here and appears everywhere with the same checks, default and help text.

Examples:
    >>> from mxbai_integrations.options import RerankerOptions
    >>> RerankerOptions(providers=["cpu"], batch_size=16).providers
    ('CPUExecutionProvider',)
    >>> RerankerOptions.from_dict({"batch_size": 0}, where="reranker_kwargs")
    Traceback (most recent call last):
    ...
    mxbai_integrations.errors.ArgumentError: batch_size must be a positive int, got 0
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from mxbai_integrations import providers as prov
from mxbai_integrations.artifact import DTYPES
from mxbai_integrations.checks import (
    LONG_DOCUMENTS,
    check_bool,
    check_long_documents,
    check_non_negative_int,
    check_positive_int,
)
from mxbai_integrations.errors import ArgumentError, ArgumentTypeError

DEFAULT_BATCH_SIZE = 32


def _cli(help: str, *, metavar: str | None = None, flag: str | None = None, type: str | None = None) -> dict[str, Any]:
    return {"help": help, "metavar": metavar, "flag": flag, "type": type}


@dataclass(frozen=True)
class RerankerOptions:
    """How ``MxbaiReranker`` loads and runs a model; checked when made, immutable after.

    Attributes:
        providers: "auto" (TensorRT -> CUDA -> CPU among those available) or execution providers in
            order: names, aliases (``cpu``, ``cuda``, ``tensorrt``) or (name, options) pairs.
        dtype: which artifact to build/load for a hub id (default fp16 on GPU, fp32 on CPU); for an
            artifact directory, the dtype it must have.
        batch_size: rows per batch at most.
        max_length: token budget per pair (default: the manifest's; v1 512, v2 8192).
        max_batch_tokens: cap on rows x padded length per batch (default 4096 on CPU, 16384 on GPU).
        allow_fallback: run on the CPU with a warning when a requested GPU provider does not attach
            (or is not offered by this onnxruntime build), instead of raising ProviderError.
        revision: for a hub id, the revision (branch, tag or commit hash) of the artifact repo, or
            of the checkpoint a first-use export reads (default main).
        cache_dir: where first-use exports and TensorRT engines live (default
            ``$MXBAI_INTEGRATIONS_CACHE`` or ``~/.cache/mxbai_integrations``).
        intra_op_num_threads: CPU threads for onnxruntime (default: onnxruntime's).
        verify: check the artifact files' sha256 against the manifest at load.
        long_documents: v1 documents longer than ``max_length``: "truncate" (the reference's
            behaviour) or "max_chunk": score overlapping chunks and keep the best one's score.
        chunk_stride: "max_chunk": tokens each chunk repeats from the one before.
        max_chunks: "max_chunk": chunks per document at most (None: as many as the document needs).
    """

    providers: str | tuple[prov.ProviderSpec, ...] = field(default="auto", metadata=_cli(
        "'auto' (TensorRT -> CUDA -> CPU) or a comma-separated list: cpu, cuda, tensorrt"))
    dtype: str | None = field(default=None, metadata=_cli(
        "for a hub id: which artifact to export/load (default fp16 on GPU, fp32 on CPU); "
        "for an artifact directory: the dtype it must have"))
    batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata=_cli(
        f"pairs per batch (default {DEFAULT_BATCH_SIZE})", metavar="N"))
    max_length: int | None = field(default=None, metadata=_cli(
        "token budget per pair (default: the artifact's)", metavar="N"))
    max_batch_tokens: int | None = field(default=None, metadata=_cli(
        "rows x padded length per batch at most (default 4096 on CPU, 16384 on GPU)", metavar="N"))
    allow_fallback: bool = field(default=False, metadata=_cli(
        "run on the CPU with a warning when a requested GPU provider is missing or does not attach"))
    revision: str | None = field(default=None, metadata=_cli(
        "for a hub id: the revision (branch, tag or commit) of the artifact repo or checkpoint", metavar="REV"))
    cache_dir: str | None = field(default=None, metadata=_cli(
        "first-use exports and TensorRT engines (default $MXBAI_INTEGRATIONS_CACHE or ~/.cache/mxbai_integrations)",
        metavar="DIR"))
    intra_op_num_threads: int | None = field(default=None, metadata=_cli(
        "CPU threads for onnxruntime (default: onnxruntime's)", metavar="N", flag="--threads"))
    verify: bool = field(default=True, metadata=_cli(
        "skip the sha256 check of the artifact files at load", flag="--no-verify"))
    long_documents: str = field(default="truncate", metadata=_cli(
        "v1 documents longer than max_length: 'truncate' them like the reference (default), or score "
        "overlapping chunks and keep the best ('max_chunk', Cohere's habit)"))
    chunk_stride: int = field(default=64, metadata=_cli(
        "max_chunk: tokens each chunk repeats from the one before (default 64, at most half a chunk)",
        metavar="N", type="non_negative_int"))
    max_chunks: int | None = field(default=None, metadata=_cli(
        "max_chunk: chunks per document at most (default: as many as it takes)", metavar="N"))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "providers", prov.normalize_providers(self.providers))
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ArgumentError(f"dtype must be one of {DTYPES} or None, got {self.dtype!r}")
        check_positive_int("batch_size", self.batch_size, allow_none=False)
        for name in ("max_length", "max_batch_tokens", "intra_op_num_threads"):
            check_positive_int(name, getattr(self, name))
        check_bool("allow_fallback", self.allow_fallback)
        check_bool("verify", self.verify)
        check_long_documents(self.long_documents)
        check_non_negative_int("chunk_stride", self.chunk_stride)
        check_positive_int("max_chunks", self.max_chunks)
        if self.revision is not None and (not isinstance(self.revision, str) or not self.revision.strip()):
            raise ArgumentError(f"revision must be a non-empty string or None, got {self.revision!r}")
        if self.cache_dir is not None:
            if not isinstance(self.cache_dir, (str, os.PathLike)):
                raise ArgumentTypeError(f"cache_dir must be a path or None, got {type(self.cache_dir).__name__}")
            set_(self, "cache_dir", os.fspath(self.cache_dir))

    # -- dictionaries (adapters' reranker_kwargs, JSON, Ray) ----------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, *, where: str = "options") -> RerankerOptions:
        """Build from keyword arguments, naming ``where`` and the unknown keys when there are any."""
        if values is None:
            return cls()
        if not isinstance(values, Mapping):
            raise ArgumentTypeError(f"{where} must be a dict, got {type(values).__name__}")
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ArgumentError(f"{where}: unknown option(s) {unknown}; allowed: {sorted(cls.names())}")
        return cls(**values)

    @classmethod
    def coerce(cls, value: RerankerOptions | Mapping[str, Any] | None, *, where: str = "options") -> RerankerOptions:
        """Accept a record, a dict of its fields, or None (defaults)."""
        return value if isinstance(value, RerankerOptions) else cls.from_dict(value, where=where)

    def to_dict(self, *, only_changed: bool = False) -> dict[str, Any]:
        """Plain JSON-able values (providers as lists); ``only_changed`` drops fields at their default."""
        data = asdict(self)
        if isinstance(data["providers"], tuple):
            data["providers"] = [p if isinstance(p, str) else [p[0], dict(p[1])] for p in data["providers"]]
        if only_changed:
            defaults = asdict(type(self)())
            data = {k: v for k, v in data.items() if v != defaults[k]}
        return data

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    # -- command line --------------------------------------------------------------------------------
    @classmethod
    def add_cli_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per field (``--batch-size``, ``--no-verify``, ...), with the field's default and help."""
        add_dataclass_arguments(parser, cls, choices={"dtype": DTYPES, "long_documents": LONG_DOCUMENTS},
                                as_text={"providers"})

    @classmethod
    def from_cli(cls, args: argparse.Namespace) -> RerankerOptions:
        """The record from parsed flags (``--providers cuda,cpu`` becomes a list)."""
        values = {name: getattr(args, name) for name in cls.names()}
        values["providers"] = prov.parse_providers_text(values["providers"])
        return cls(**values)


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type[Any], *, exclude: Sequence[str] = (),
                            choices: Mapping[str, Sequence[str]] | None = None,
                            as_text: Sequence[str] = ()) -> None:
    """Flags generated from a dataclass's fields: name, default, help and metavar come from the field.

    A field's metadata may hold ``help``, ``metavar``, ``flag`` (default ``--field-name``) and ``dest``
    (default the field's name; set it where two records share a field name). A bool
    becomes a switch that flips its default; an int field takes a positive integer, a float field a
    number; ``choices`` and ``as_text`` (passed through as typed) cover the rest.
    """
    choices = choices or {}
    for f in fields(cls):
        if f.name in exclude:
            continue
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        kind = str(f.type)
        common: dict[str, Any] = {"dest": meta.get("dest") or f.name, "help": meta.get("help")}
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_false" if default else "store_true", **common)
        elif f.name in choices:
            parser.add_argument(flag, choices=list(choices[f.name]), default=default, **common)
        elif f.name in as_text or kind.startswith("str"):
            parser.add_argument(flag, default=default, metavar=meta.get("metavar"), **common)
        elif meta.get("type") == "non_negative_int":
            parser.add_argument(flag, type=non_negative_int_arg, default=default, metavar=meta.get("metavar"),
                                **common)
        elif kind.startswith("float"):
            parser.add_argument(flag, type=float, default=default, metavar=meta.get("metavar"), **common)
        else:
            parser.add_argument(flag, type=positive_int_arg, default=default, metavar=meta.get("metavar"), **common)


def dataclass_from_cli(cls: type[Any], args: argparse.Namespace, **overrides: Any) -> Any:
    """An instance of ``cls`` from the flags ``add_dataclass_arguments`` made (``overrides`` win)."""
    dests = {f.name: f.metadata.get("dest") or f.name for f in fields(cls)}
    values = {name: getattr(args, dest) for name, dest in dests.items() if hasattr(args, dest)}
    return cls(**{**values, **overrides})


def non_negative_int_arg(text: str) -> int:
    """argparse ``type=``: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_int_arg(text: str) -> int:
    """argparse ``type=``: a positive integer, or argparse's own one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def provider_list(value: str | Sequence[Any]) -> str | list[Any]:
    """Providers as MxbaiReranker takes them ("auto" or a list), from a record's tuple."""
    return value if isinstance(value, str) else list(value)
