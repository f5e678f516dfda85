"""``mxbai-onnx``: export checkpoints, inspect artifacts, and rerank from the shell.

The people typing these commands are using the library, not debugging it: a user mistake (a
missing file, a bad JSON line, an unknown model, an empty input) ends in one line on stderr and
exit status 2, never a traceback. A check that ran and failed (validation refused) exits 1, and
so does an internal error (one line; the traceback with -v), which is never reported as a usage error.

This module belongs to the torch-free run-time package, so the build-time ``onnx_export`` package
is imported only inside the commands that need it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from mxbai_integrations.artifact import ArtifactError, Manifest, ValidationRecord, read_manifest, verify_files

PROG = "mxbai-onnx"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXPORT_INSTALL = 'pip install "mxbai-integrations[export]"'
# Top-level modules the `export` extra provides; checked before any work so a missing one is one line.
EXPORT_MODULES = ("torch", "transformers", "onnx", "onnxscript")
REFERENCE_MODULES = {"v1": ("sentence_transformers",), "v2": ("mxbai_rerank",)}
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
MIN_DOC_COLUMN = 20


class UsageError(Exception):
    """A mistake in what the user gave the command; reported as one line with exit status 2."""


# --------------------------------------------------------------------------------------------- helpers


def _one_line(message: object) -> str:
    """Exception texts from deep libraries can span lines; the CLI promises one."""
    return " ".join(str(message).split())


def _write(text: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(text)


def _error(message: object) -> None:
    _write(f"{PROG}: error: {_one_line(message)}\n", sys.stderr)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _require(modules: Sequence[str], why: str) -> None:
    """Fail early, in one line, when an optional extra is not installed."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{why} needs {', '.join(missing)} (the `export` extra): {EXPORT_INSTALL}")


def _providers(text: str) -> str | list[str]:
    if text.strip().lower() == "auto":
        return "auto"
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--providers must be 'auto' or a comma-separated list such as 'cuda,cpu'")
    return [PROVIDER_ALIASES.get(name.lower(), name) for name in names]


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show library warnings (e.g. a GPU provider falling back) as one line each, not file:line dumps."""

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        _write(f"{PROG}: warning: {_one_line(message)}\n", sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextmanager
def _quiet_build_tools(verbose: bool) -> Iterator[None]:
    """Hide the tracer and tokenizer chatter of torch/transformers/optimum unless --verbose.

    The export's result is judged by its validation record, which the command prints; the
    libraries' own warnings (tracer constants, deprecated arguments) are not actionable for users.
    """
    if verbose:
        yield
        return
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)


# ------------------------------------------------------------------------------------------- documents


def _split_lines(text: str) -> list[str]:
    # Only "\n" separates records: str.splitlines() would also split on U+2028 inside a document.
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def read_documents(file: str | None, fmt: str = "auto", stdin: TextIO | None = None) -> list[str]:
    """Read documents from FILE or stdin: one per line, or JSON lines with a "text" field.

    Blank lines are skipped, so an index in the output is the position among the documents read.
    ``fmt="auto"`` reads JSON lines when the first non-blank line starts with ``{``.
    """
    if file is None or file == "-":
        stream = stdin if stdin is not None else sys.stdin
        if stream is None or stream.isatty():
            raise UsageError("no documents: give FILE, or pipe documents on stdin (one per line)")
        name = "<stdin>"
        raw = getattr(stream, "buffer", None)
        try:
            text = raw.read().decode("utf-8") if raw is not None else stream.read()
        except UnicodeDecodeError as exc:
            raise UsageError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    else:
        name = file
        path = Path(file).expanduser()
        if not path.exists():
            raise UsageError(f"documents file {file!r} does not exist")
        if path.is_dir():
            raise UsageError(f"documents file {file!r} is a directory")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise UsageError(f"cannot read documents file {file!r}: {exc.strerror or exc}") from None
    rows = [(number, line) for number, line in enumerate(_split_lines(text), 1) if line.strip()]
    if not rows:
        raise UsageError(f"{name}: no documents (the input is empty)")
    if fmt == "auto":
        fmt = "jsonl" if rows[0][1].lstrip().startswith("{") else "lines"
    if fmt == "lines":
        return [line for _, line in rows]
    documents = []
    for number, line in rows:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{name}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict) or "text" not in record:
            raise UsageError(f'{name}:{number}: expected a JSON object with a "text" field')
        if not isinstance(record["text"], str):
            raise UsageError(f'{name}:{number}: "text" must be a string, got {type(record["text"]).__name__}')
        documents.append(record["text"])
    return documents


# --------------------------------------------------------------------------------------------- output


def _results_as_dicts(results: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"index": int(r.index), "score": float(r.score), "document": r.document} for r in results]


def format_table(rows: Sequence[dict[str, Any]], width: int) -> str:
    """An aligned rank/index/score/document table, documents cut to fit the terminal."""
    ranks = [str(i) for i in range(1, len(rows) + 1)]
    indexes = [str(r["index"]) for r in rows]
    scores = [f"{r['score']:.4f}" for r in rows]
    w_rank = max(len("rank"), *(len(s) for s in ranks))
    w_index = max(len("index"), *(len(s) for s in indexes))
    w_score = max(len("score"), *(len(s) for s in scores))
    room = max(width - (w_rank + w_index + w_score + 6), MIN_DOC_COLUMN)
    lines = [f"{'rank':>{w_rank}}  {'index':>{w_index}}  {'score':>{w_score}}  document"]
    for rank, index, score, row in zip(ranks, indexes, scores, rows, strict=True):
        doc = " ".join(str(row.get("document") or "").split())
        if len(doc) > room:
            doc = doc[: room - 1] + "…"
        lines.append(f"{rank:>{w_rank}}  {index:>{w_index}}  {score:>{w_score}}  {doc}".rstrip())
    return "\n".join(lines) + "\n"


def _validation_lines(validation: ValidationRecord | None, *, cases: bool = True) -> list[str]:
    """The record's own block: the verdict with the statistic that decided it, then the recorded drift."""
    if validation is None:
        return ["validation    none recorded"]
    return validation.lines(cases=cases)


def _manifest_lines(directory: Path, manifest: Manifest) -> list[str]:
    source = manifest.source
    arch = source.get("architecture") or source.get("model_type") or "?"
    shape = ", ".join(part for part in (
        f"{source['num_hidden_layers']} layers" if source.get("num_hidden_layers") else "",
        f"hidden {source['hidden_size']}" if source.get("hidden_size") else "",
    ) if part)
    score = manifest.score
    if score.activation == "sigmoid":
        score_text = "sigmoid(logit)"
    else:
        score_text = 'logit("1") - logit("0"), raw'
        if score.normalize_shift is not None:
            score_text += f"; --normalize: sigmoid(x - {score.normalize_shift:g})"
    files = ", ".join(f"{name} {_human_bytes(rec.bytes)}" for name, rec in manifest.files.items())
    lines = [
        f"artifact      {directory} (format {manifest.format_version})",
        f"family        {manifest.family}  {arch}" + (f" ({shape})" if shape else ""),
        f"source        {source.get('model_id') or '?'}"
        + (f" @ {source['revision']}" if source.get("revision") else "")
        + (f"  [{source['path']}]" if source.get("path") else ""),
        f"dtype         {manifest.dtype}, opset {manifest.opset}",
        f"max_length    {manifest.max_length}",
        f"padding       {manifest.padding_side}, pad token id {manifest.pad_token_id}",
        f"score         {score_text}",
    ]
    if manifest.prompt is not None:
        p = manifest.prompt
        lines.append(f"prompt        {p.predefined_length} template tokens, query budget "
                     f"{p.query_budget_num}/{p.query_budget_den} of max_length, {p.model_max_length} positions")
    lines.append(f"files         {files}")
    if manifest.created_with:
        lines.append("created with  " + ", ".join(f"{k} {v}" for k, v in manifest.created_with.items()))
    return lines + _validation_lines(manifest.validation)


# -------------------------------------------------------------------------------------------- commands


def _cmd_export(args: argparse.Namespace) -> int:
    """Checkpoint -> artifact; exit 1 (not 2) when the export ran but validation refused it."""
    _require(EXPORT_MODULES, "`mxbai-onnx export`")
    from onnx_export import ExportError, export_model

    try:
        with _quiet_build_tools(args.verbose):
            out = export_model(
                args.source, args.out_dir, dtype=args.dtype, max_length=args.max_length, opset=args.opset,
                validate=not args.no_validate, force=args.force, revision=args.revision,
                normalize_shift=args.normalize_shift, progress=not args.quiet, exporter=args.exporter,
            )
    except ExportError as exc:
        _error(exc)
        return EXIT_FAILED
    manifest = read_manifest(out)
    size = sum(rec.bytes for rec in manifest.files.values())
    _write(f"wrote {out} ({manifest.family} {manifest.dtype}, {_human_bytes(size)})\n")
    _write("\n".join(_validation_lines(manifest.validation, cases=False)) + "\n")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    """What an artifact is and how well it matched the reference, without loading the model."""
    directory, manifest = _load_manifest(args.model)
    if args.json:
        _write(json.dumps({"path": str(directory), **manifest.to_dict()}, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    _write("\n".join(_manifest_lines(directory, manifest)) + "\n")
    try:
        verify_files(directory, manifest, checksums=args.checksums)
    except (OSError, ValueError) as exc:
        _error(exc)
        return EXIT_FAILED
    return EXIT_OK


def _load_manifest(model: str) -> tuple[Path, Manifest]:
    directory = Path(model).expanduser()
    if not directory.exists():
        raise UsageError(f"model: {model!r} is not an artifact directory (export one with `{PROG} export`)")
    return directory.resolve(), read_manifest(directory)


def _cmd_serve(args: argparse.Namespace) -> int:
    """Load the model before listening (a bad model is one line, exit 2), then serve until SIGINT/SIGTERM."""
    from mxbai_integrations.serve.app import BatchOptions, ServeLimits, create_app, run_server

    limits = ServeLimits(max_documents=args.max_documents, max_document_chars=args.max_document_chars,
                         max_body_bytes=args.max_body_bytes, max_queue=args.max_queue)
    batching = BatchOptions(max_wait_ms=args.max_wait_ms,
                            max_batch_requests=1 if args.no_batching else args.max_batch_requests)
    options: dict[str, Any] = {
        "providers": _providers(args.providers), "dtype": args.dtype, "batch_size": args.batch_size,
        "max_length": args.max_length, "allow_fallback": args.allow_fallback,
    }
    if args.ray:
        from mxbai_integrations.serve.ray_serve import build_app, run_ray_server

        gpus = {"num_gpus": args.num_gpus} if args.num_gpus else None
        app = build_app(args.model, reranker_options=options, limits=limits, batching=batching,
                        num_replicas=args.replicas, ray_actor_options=gpus)
        _write(f"{PROG}: serving {args.model} with Ray Serve on http://{args.host}:{args.port}\n", sys.stderr)
        run_ray_server(app, host=args.host, port=args.port, address=args.ray_address)
        return EXIT_OK
    from mxbai_integrations import MxbaiReranker

    reranker = MxbaiReranker(args.model, **options)
    _write(f"{PROG}: serving {reranker.model_id} ({reranker.family} {reranker.manifest.dtype}, "
           f"{reranker.providers[0]}) on http://{args.host}:{args.port}\n", sys.stderr)
    run_server(create_app(reranker, limits=limits, batching=batching), host=args.host, port=args.port,
               log_level="info" if args.verbose else "warning", graceful_timeout_s=args.graceful_timeout)
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    """Re-run the export-time parity check, e.g. after copying an artifact or upgrading libraries."""
    directory, manifest = _load_manifest(args.model)
    _require((*EXPORT_MODULES, *REFERENCE_MODULES[manifest.family]), "`mxbai-onnx validate`")
    reference = Path(args.reference).expanduser()
    if args.reference.startswith((".", "/", "~")) and not reference.is_dir():
        raise UsageError(f"--reference: {args.reference!r} is not a checkpoint directory")
    verify_files(directory, manifest)
    from onnx_export.validate import validate_artifact

    source = str(reference.resolve()) if reference.is_dir() else args.reference
    with _quiet_build_tools(args.verbose):
        record = validate_artifact(directory, manifest, source, revision=args.revision)
    if args.json:
        _write(json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        _write("\n".join(_validation_lines(record)) + "\n")
    return EXIT_OK if record.passed else EXIT_FAILED


def _cmd_rerank(args: argparse.Namespace) -> int:
    """Read the documents first, so bad input fails before the model is loaded."""
    if not args.query.strip():
        raise UsageError("--query must not be empty")
    documents = read_documents(args.file, args.format)
    from mxbai_integrations import MxbaiReranker

    reranker = MxbaiReranker(
        args.model, providers=_providers(args.providers), dtype=args.dtype, batch_size=args.batch_size,
        max_length=args.max_length, allow_fallback=args.allow_fallback,
    )
    results = reranker.rank(args.query, documents, top_k=args.top_k, return_documents=True,
                            instruction=args.instruction, normalize=args.normalize)
    rows = _results_as_dicts(results)
    if args.json:
        _write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    else:
        _write(format_table(rows, shutil.get_terminal_size((100, 24)).columns))
    return EXIT_OK


PLOT_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _cmd_eval(args: argparse.Namespace) -> int:
    """Reranking quality on the user's BEIR data; outputs are checked, and the data read, before any model loads."""
    if args.plot is not None:
        plot = Path(args.plot).expanduser()
        if plot.suffix.lower() not in PLOT_FORMATS:
            raise UsageError(f"--plot: {args.plot!r} must end in one of {', '.join(PLOT_FORMATS)}")
        if not plot.parent.is_dir():
            raise UsageError(f"--plot: the directory of {args.plot!r} does not exist")
        if importlib.util.find_spec("matplotlib") is None:
            raise ImportError('--plot needs matplotlib (the `eval` extra): pip install "mxbai-integrations[eval]"')
    if args.save_runs is not None and Path(args.save_runs).expanduser().exists() \
            and not Path(args.save_runs).expanduser().is_dir():
        raise UsageError(f"--save-runs: {args.save_runs!r} exists and is not a directory")
    from mxbai_integrations.eval import evaluate

    report = evaluate(
        args.models, args.data, run=args.run, depth=args.depth, split=args.split, limit_queries=args.limit_queries,
        instruction=args.instruction, batch_size=args.batch_size, providers=_providers(args.providers),
        show_progress=not args.quiet, stat_test=args.test, max_p=args.max_p, max_length=args.max_length,
        allow_fallback=args.allow_fallback,
    )
    if args.save_runs is not None:
        paths = report.save_runs(args.save_runs)
        if not args.quiet:
            _write(f"wrote {len(paths)} TREC run files to {args.save_runs}\n", sys.stderr)
    if args.plot is not None:
        report.plot(args.plot)
        if not args.quiet:
            _write(f"wrote {args.plot}\n", sys.stderr)
    _write(report.to_json() + "\n" if args.json else report.format_table())
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- parser


def _add_reranker_options(p: argparse.ArgumentParser) -> None:
    """The MxbaiReranker options `rerank` and `serve` share: one definition, one help text."""
    p.add_argument("--providers", default="auto",
                   help="'auto' (TensorRT -> CUDA -> CPU) or a comma-separated list: cpu, cuda, tensorrt")
    p.add_argument("--allow-fallback", action="store_true",
                   help="run on the CPU with a warning when a requested GPU provider does not attach")
    p.add_argument("--dtype", choices=("fp32", "fp16", "int8"), default=None,
                   help="for a hub id: which artifact to export/load (default fp16 on GPU, fp32 on CPU)")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N", help="pairs per batch (default 32)")
    p.add_argument("--max-length", type=_positive_int, default=None, metavar="N",
                   help="token budget per pair (default: the artifact's)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so documentation and tests can inspect it)."""
    try:
        version = importlib.metadata.version("mxbai-integrations")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    parser = argparse.ArgumentParser(
        prog=PROG, description="mxbai-rerank v1/v2 on ONNX Runtime: export, inspect, validate and rerank.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and show library warnings")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("export", help="export a Hugging Face checkpoint to an ONNX artifact (extra `export`)",
                       description="Export a checkpoint (hub id or local directory) to an artifact directory, "
                                   "validated against the reference library unless --no-validate.")
    p.add_argument("source", metavar="SOURCE", help="hub id (HF_HUB_OFFLINE=1 honoured) or checkpoint directory")
    p.add_argument("out_dir", metavar="OUT_DIR", help="artifact directory to create (must be empty unless --force)")
    p.add_argument("--dtype", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="fp32 (default); fp16 for CUDA/TensorRT; int8 for CPU")
    p.add_argument("--max-length", type=_positive_int, default=None, metavar="N",
                   help="default token budget recorded in the manifest (v1: 512, v2: 8192)")
    p.add_argument("--opset", type=_positive_int, default=18, metavar="N", help="ONNX opset (default 18)")
    p.add_argument("--revision", default=None, help="hub revision of SOURCE")
    p.add_argument("--normalize-shift", type=float, default=None, metavar="X",
                   help="v2 only: the shift in sigmoid(score - X) used by --normalize")
    p.add_argument("--exporter", choices=("auto", "optimum", "torch"), default="auto",
                   help="torch: torch.onnx.export(dynamo=True), any transformers; optimum: Optimum's exporter "
                        "(extra export-optimum, transformers < 4.58); auto (default): optimum when installed")
    p.add_argument("--no-validate", action="store_true", help="skip the parity check against the reference")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("rerank", help="rank documents for a query",
                       description="Rank documents (one per line, or JSON lines with a \"text\" field) "
                                   "read from FILE, or from stdin when FILE is absent or '-'.")
    p.add_argument("model", metavar="MODEL", help="artifact directory, or a hub id / checkpoint exported on first use")
    p.add_argument("file", metavar="FILE", nargs="?", default=None, help="documents file; '-' or absent: stdin")
    p.add_argument("--query", required=True, help="the query")
    p.add_argument("--top-k", type=_positive_int, default=None, metavar="K", help="print only the best K")
    p.add_argument("--instruction", default=None, help="v2 only: a task instruction added to the prompt")
    p.add_argument("--normalize", action="store_true", help="v2: scores through sigmoid(score - shift)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--jsonl", dest="format", action="store_const", const="jsonl",
                     help='read JSON lines with a "text" field (default: detected from the first line)')
    fmt.add_argument("--lines", dest="format", action="store_const", const="lines",
                     help="read one document per line, even when a line starts with '{'")
    p.set_defaults(format="auto")
    p.add_argument("--json", action="store_true", help="print a JSON list of {index, score, document}")
    _add_reranker_options(p)
    p.set_defaults(func=_cmd_rerank)

    p = sub.add_parser("serve", help="serve the Cohere / TEI rerank HTTP API (extra `serve`)",
                       description="Serve MODEL over HTTP: Cohere's POST /v1/rerank and /v2/rerank (also Jina "
                                   "clients), text-embeddings-inference's POST /rerank, GET /health, /info and "
                                   "/metrics. Concurrent requests are batched together. SIGTERM lets requests "
                                   "in flight finish.")
    p.add_argument("model", metavar="MODEL", help="artifact directory, or a hub id / checkpoint exported on first use")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=_positive_int, default=8000, metavar="N", help="port (default 8000)")
    _add_reranker_options(p)
    p.add_argument("--max-wait-ms", type=float, default=5.0, metavar="MS",
                   help="how long the first request waits for others to batch with (default 5)")
    p.add_argument("--max-batch-requests", type=_positive_int, default=64, metavar="N",
                   help="requests per model pass at most (default 64)")
    p.add_argument("--no-batching", action="store_true", help="run each request alone, one after the other")
    p.add_argument("--max-documents", type=_positive_int, default=1000, metavar="N",
                   help="documents per request (default 1000; more is a 413)")
    p.add_argument("--max-document-chars", type=_positive_int, default=100_000, metavar="N",
                   help="characters per document (default 100000; more is a 413)")
    p.add_argument("--max-body-bytes", type=_positive_int, default=16 * 2**20, metavar="N",
                   help="bytes per request body (default 16 MiB; more is a 413)")
    p.add_argument("--max-queue", type=_positive_int, default=256, metavar="N",
                   help="requests waiting for the model (default 256; more is a 503)")
    p.add_argument("--graceful-timeout", type=float, default=30.0, metavar="S",
                   help="seconds that requests in flight get to finish after SIGTERM (default 30)")
    p.add_argument("--ray", action="store_true", help="serve through Ray Serve (extra `ray`): replicas, GPUs")
    p.add_argument("--replicas", type=_positive_int, default=None, metavar="N", help="--ray: number of replicas")
    p.add_argument("--num-gpus", type=float, default=0.0, metavar="G", help="--ray: GPUs per replica")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="--ray: join this cluster (default: RAY_ADDRESS, or start a local one)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("info", help="print an artifact's manifest summary and validation record")
    p.add_argument("model", metavar="MODEL", help="artifact directory")
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    p.add_argument("--checksums", action="store_true", help="also check the files' sha256 (slow for large models)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("validate", help="re-run the parity check against the reference library (extra `export`)",
                       description="Score the built-in validation cases with the artifact and with the reference "
                                   "library on SOURCE; exit 1 when they disagree beyond the tolerance.")
    p.add_argument("model", metavar="MODEL", help="artifact directory")
    p.add_argument("--reference", required=True, metavar="SOURCE", help="hub id or checkpoint directory")
    p.add_argument("--revision", default=None, help="hub revision of SOURCE")
    p.add_argument("--json", action="store_true", help="print the validation record as JSON")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("eval", help="reranking quality on your BEIR-format data (extra `eval`)",
                       description="Rerank a first stage's top --depth per query with each MODEL and report "
                                   "NDCG@10, MRR@10, Recall@100 and MAP (ranx) for the first stage and every "
                                   "model, with paired significance tests, latency and agreement between models.")
    p.add_argument("models", metavar="MODEL", nargs="+", help="artifact directories (or hub ids) to compare")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="BEIR directory: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--run", default=None, metavar="FILE",
                   help="first stage as a TREC run file (qid Q0 docid rank score tag); default: BM25 (bm25s)")
    p.add_argument("--depth", type=_positive_int, default=100, metavar="N",
                   help="first-stage candidates reranked per query (default 100)")
    p.add_argument("--split", default="test", help="qrels split: qrels/<split>.tsv (default test)")
    p.add_argument("--limit-queries", type=_positive_int, default=None, metavar="N",
                   help="evaluate only the first N queries that have qrels")
    p.add_argument("--instruction", default=None, help="v2 only: a task instruction added to the prompt")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                   help="pairs per batch (default 32)")
    p.add_argument("--max-length", type=_positive_int, default=None, metavar="N",
                   help="token budget per pair (default: the artifact's)")
    p.add_argument("--providers", default="auto",
                   help="'auto' (TensorRT -> CUDA -> CPU) or a comma-separated list: cpu, cuda, tensorrt")
    p.add_argument("--allow-fallback", action="store_true",
                   help="run on the CPU with a warning when a requested GPU provider does not attach")
    p.add_argument("--test", choices=("student", "fisher", "tukey"), default="student",
                   help="paired significance test (ranx): Student's t (default), Fisher's randomization, Tukey's HSD")
    p.add_argument("--max-p", type=float, default=0.05, metavar="P", help="significance level (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    p.add_argument("--save-runs", default=None, metavar="DIR", help="write one TREC run file per run into DIR")
    p.add_argument("--plot", default=None, metavar="FILE", help="save a bar chart of the metrics (png, pdf, svg)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)
    return parser


class _NotShownElsewhere(logging.Filter):
    """Pass only records that no library handler prints already (huggingface_hub has its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if logger.handlers:
                return False
            if not logger.propagate:
                break
            logger = logger.parent
        return True


@contextmanager
def _cli_logging(verbose: bool) -> Iterator[None]:
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
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.addFilter(_NotShownElsewhere())
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# OSErrors about the paths the user gave (our own checks raise these too); other OSErrors (a full
# disk, a broken driver) are the environment's, not a usage mistake.
_USER_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, NotADirectoryError, IsADirectoryError)
_OUR_PACKAGES = ("mxbai_integrations", "onnx_export")


def _raised_in_our_code(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc``'s traceback is in this project's packages.

    Our argument checks raise ValueError/TypeError where the input enters, naming the argument;
    the same types raised inside numpy, onnxruntime or torch mean something broke, not that the
    user typed something wrong.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in _OUR_PACKAGES


def is_user_mistake(exc: BaseException) -> bool:
    """Exit status 2 (usage) or 1 (internal): only mistakes in what the user gave get 2.

    A usage error, a missing extra, a bad or corrupt artifact, an unavailable provider, a bad path,
    or a ValueError/TypeError our own checks raised. Anything else, including a ValueError from
    deep inside a library, is an internal error.
    """
    if isinstance(exc, (UsageError, ImportError, ArtifactError, *_USER_OS_ERRORS)):
        return True
    if isinstance(exc, (ValueError, TypeError)):
        return _raised_in_our_code(exc)
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mxbai-onnx`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        # argparse binds the optional FILE too early in `rerank MODEL --query Q FILE` (it matches
        # MODEL and an empty FILE together); take a single leftover positional as FILE.
        if (extras and args.command == "rerank" and args.file is None and len(extras) == 1
                and (extras[0] == "-" or not extras[0].startswith("-"))):
            args.file, extras = extras[0], []
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:  # --help, --version, and argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with _cli_logging(args.verbose), _one_line_warnings():
            return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`| head`): not an error worth a message; keep Python quiet at exit.
        _silence_stdout()
        return EXIT_FAILED
    except KeyboardInterrupt:
        _write("\n", sys.stderr)
        return 130
    except Exception as exc:
        if is_user_mistake(exc):
            _error(exc)
            return EXIT_USAGE
        # Our bug or the environment's, not the user's: say so in one line; -v adds the traceback.
        hint = "" if args.verbose else " (rerun with -v for the traceback)"
        _error(f"internal error: {type(exc).__name__}: {exc}{hint}")
        if args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
