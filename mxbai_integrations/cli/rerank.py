"""``mxbai-onnx rerank``: rank documents from a file or stdin for one query."""

from __future__ import annotations

import argparse
import json
import shutil

from mxbai_integrations.checks import check_query
from mxbai_integrations.cli.console import write
from mxbai_integrations.cli.documents import read_documents
from mxbai_integrations.cli.errors import EXIT_OK, UsageError
from mxbai_integrations.cli.render import format_table, results_as_dicts
from mxbai_integrations.errors import ArgumentError
from mxbai_integrations.options import RerankerOptions


def run(args: argparse.Namespace) -> int:
    """Read the query and the documents first, so bad input fails before the model is loaded.

    A hub id or checkpoint without a cached artifact is exported on first use through
    ``MxbaiReranker`` (``resolve`` -> ``export_model``), which keeps the build tools quiet and shows
    one progress bar of its own.
    """
    try:
        check_query(args.query)
    except ArgumentError:
        raise UsageError("--query must not be empty") from None
    options = RerankerOptions.from_cli(args)
    documents = read_documents(args.file, args.format)
    from mxbai_integrations import MxbaiReranker

    reranker = MxbaiReranker(args.model, options=options)
    results = reranker.rank(args.query, documents, top_k=args.top_k, return_documents=True,
                            instruction=args.instruction, normalize=args.normalize)
    rows = results_as_dicts(results)
    if args.json:
        write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    else:
        write(format_table(rows, shutil.get_terminal_size((100, 24)).columns))
    return EXIT_OK
