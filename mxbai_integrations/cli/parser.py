"""The ``mxbai-onnx`` argument parser: one sub-parser per command.

The reranker flags of ``rerank``, ``serve`` and ``eval`` are generated from ``RerankerOptions``, and
the server's limits, batching and connection flags from ``ServeLimits`` / ``BatchOptions`` /
``ServerOptions``: one definition, the same defaults and help text everywhere (vLLM's
``EngineArgs`` pattern).
"""

from __future__ import annotations

import argparse
import importlib.metadata
from typing import Any

from mxbai_integrations.artifact import DTYPES
from mxbai_integrations.cli.console import PROG
from mxbai_integrations.options import RerankerOptions, add_dataclass_arguments, positive_int_arg
from mxbai_integrations.serve.config import BatchOptions, ServeLimits, ServerOptions

MODEL_HELP = "artifact directory, or a hub id / checkpoint exported on first use"


def _version() -> str:
    try:
        return importlib.metadata.version("mxbai-integrations")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export a Hugging Face checkpoint to an ONNX artifact (extra `export`)",
                       description="Export a checkpoint (hub id or local directory) to an artifact directory, "
                                   "validated against the reference library unless --no-validate.")
    p.add_argument("source", metavar="SOURCE", help="hub id (HF_HUB_OFFLINE=1 honoured) or checkpoint directory")
    p.add_argument("out_dir", metavar="OUT_DIR", help="artifact directory to create (must be empty unless --force)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32",
                   help="fp32 (default); fp16 for CUDA/TensorRT; int8 (and int4 for v2) for CPU")
    p.add_argument("--max-length", type=positive_int_arg, default=None, metavar="N",
                   help="default token budget recorded in the manifest (v1: 512, v2: 8192)")
    p.add_argument("--opset", type=positive_int_arg, default=18, metavar="N", help="ONNX opset (default 18)")
    p.add_argument("--revision", default=None, help="hub revision of SOURCE")
    p.add_argument("--normalize-shift", type=float, default=None, metavar="X",
                   help="v2 only: the shift in sigmoid(score - X) used by --normalize")
    p.add_argument("--exporter", choices=("auto", "optimum", "torch"), default="auto",
                   help="torch: torch.onnx.export(dynamo=True), any transformers; optimum: Optimum's exporter "
                        "(extra export-optimum, transformers < 4.58); auto (default): optimum when installed")
    p.add_argument("--no-validate", action="store_true", help="skip the parity check against the reference")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_rerank(sub: Any) -> None:
    p = sub.add_parser("rerank", help="rank documents for a query",
                       description="Rank documents read from FILE, or from stdin when FILE is absent or '-': one "
                                   "per line, JSON lines with a \"text\" field, or a JSON array of strings or of "
                                   "objects with a \"text\" field (detected; a UTF-8 BOM and CRLF are fine).")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("file", metavar="FILE", nargs="?", default=None, help="documents file; '-' or absent: stdin")
    p.add_argument("--query", required=True, help="the query")
    p.add_argument("--top-k", type=positive_int_arg, default=None, metavar="K", help="print only the best K")
    p.add_argument("--instruction", default=None, help="v2 only: a task instruction added to the prompt")
    p.add_argument("--normalize", action="store_true", help="v2: scores through sigmoid(score - shift)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--jsonl", dest="format", action="store_const", const="jsonl",
                     help='read JSON lines with a "text" field (default: detected from the input)')
    fmt.add_argument("--lines", dest="format", action="store_const", const="lines",
                     help="read one document per line, even when the input starts with '{' or '['")
    p.set_defaults(format="auto")
    p.add_argument("--json", action="store_true", help="print a JSON list of {index, score, document}")
    RerankerOptions.add_cli_arguments(p.add_argument_group("reranker options"))


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the Cohere / TEI rerank HTTP API (extra `serve`)",
                       description="Serve MODEL over HTTP: Cohere's POST /v1/rerank and /v2/rerank (also Jina "
                                   "clients), text-embeddings-inference's POST /rerank, GET /health, /info and "
                                   "/metrics. Concurrent requests are batched together. SIGTERM lets requests "
                                   "in flight finish.")
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=positive_int_arg, default=8000, metavar="N", help="port (default 8000)")
    RerankerOptions.add_cli_arguments(p.add_argument_group("reranker options"))
    batching = p.add_argument_group("cross-request batching")
    add_dataclass_arguments(batching, BatchOptions)
    batching.add_argument("--no-batching", action="store_true", help="run each request alone, one after the other")
    add_dataclass_arguments(p.add_argument_group("limits per request"), ServeLimits)
    add_dataclass_arguments(p.add_argument_group("connections"), ServerOptions)
    ray = p.add_argument_group("Ray Serve (extra `ray`)")
    ray.add_argument("--ray", action="store_true", help="serve through Ray Serve: replicas, GPUs")
    ray.add_argument("--replicas", type=positive_int_arg, default=None, metavar="N", help="--ray: number of replicas")
    ray.add_argument("--num-gpus", type=float, default=0.0, metavar="G", help="--ray: GPUs per replica")
    ray.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="--ray: join this cluster (default: RAY_ADDRESS, or start a local one)")


def _add_info_validate(sub: Any) -> None:
    p = sub.add_parser("info", help="print an artifact's manifest summary and validation record")
    p.add_argument("model", metavar="MODEL", help="artifact directory")
    p.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    p.add_argument("--checksums", action="store_true", help="also check the files' sha256 (slow for large models)")

    p = sub.add_parser("validate", help="re-run the parity check against the reference library (extra `export`)",
                       description="Score the built-in validation cases with the artifact and with the reference "
                                   "library on SOURCE; exit 1 when they disagree beyond the tolerance.")
    p.add_argument("model", metavar="MODEL", help="artifact directory")
    p.add_argument("--reference", required=True, metavar="SOURCE",
                   help="hub id or checkpoint directory the artifact was exported from")
    p.add_argument("--revision", default=None, help="hub revision of SOURCE")
    p.add_argument("--json", action="store_true", help="print the validation record as JSON")


def _add_push(sub: Any) -> None:
    p = sub.add_parser("push", help="upload an artifact to a Hugging Face Hub model repo (extra `hub`)",
                       description="Upload ARTIFACT's files (those its manifest lists) and a model card written from "
                                   "its manifest to the model repo REPO_ID, creating it if needed. The artifact is "
                                   "checked first; a corrupt or failed-validation artifact is not uploaded. The token "
                                   "is huggingface_hub's: HF_TOKEN or `hf auth login`.")
    p.add_argument("model", metavar="ARTIFACT", help="artifact directory")
    p.add_argument("repo_id", metavar="REPO_ID", help="the model repo, org/name")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", default=None, metavar="BRANCH", help="branch to commit to (default main)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    p.add_argument("--license", default=None, help="the card's license (default: inherited where known, else other)")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--allow-invalid", action="store_true",
                   help="upload an artifact whose export-time validation failed (the card says so)")


def _add_eval(sub: Any) -> None:
    p = sub.add_parser("eval", help="reranking quality on your BEIR-format data (extra `eval`)",
                       description="Rerank a first stage's top --depth per query with each MODEL and report "
                                   "NDCG@10, MRR@10, Recall@100 and MAP (ranx) for the first stage and every "
                                   "model, with paired significance tests, latency and agreement between models.")
    p.add_argument("models", metavar="MODEL", nargs="+", help="artifact directories (or hub ids) to compare")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="BEIR directory: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--run", default=None, metavar="FILE",
                   help="first stage as a TREC run file (qid Q0 docid rank score tag); default: BM25 (bm25s)")
    p.add_argument("--depth", type=positive_int_arg, default=100, metavar="N",
                   help="first-stage candidates reranked per query (default 100)")
    p.add_argument("--split", default="test", help="qrels split: qrels/<split>.tsv (default test)")
    p.add_argument("--limit-queries", type=positive_int_arg, default=None, metavar="N",
                   help="evaluate only the first N queries that have qrels")
    p.add_argument("--instruction", default=None, help="v2 only: a task instruction added to the prompt")
    p.add_argument("--test", choices=("student", "fisher", "tukey"), default="student",
                   help="paired significance test (ranx): Student's t (default), Fisher's randomization, Tukey's HSD")
    p.add_argument("--max-p", type=float, default=0.05, metavar="P", help="significance level (default 0.05)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")
    p.add_argument("--save-runs", default=None, metavar="DIR", help="write one TREC run file per run into DIR")
    p.add_argument("--plot", default=None, metavar="FILE", help="save a bar chart of the metrics (png, pdf, svg)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    RerankerOptions.add_cli_arguments(p.add_argument_group("reranker options"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so documentation and tests can inspect it)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="mxbai-rerank v1/v2 on ONNX Runtime: export, inspect, validate and rerank.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and show library warnings")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_export(sub)
    _add_rerank(sub)
    _add_serve(sub)
    _add_info_validate(sub)
    _add_push(sub)
    _add_eval(sub)
    return parser
