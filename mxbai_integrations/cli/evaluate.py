"""``mxbai-onnx eval``: reranking quality on the user's BEIR data (extra ``eval``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mxbai_integrations.cli import preflight
from mxbai_integrations.cli.console import write
from mxbai_integrations.cli.errors import EXIT_OK, UsageError
from mxbai_integrations.options import RerankerOptions

PLOT_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _check_outputs(args: argparse.Namespace) -> None:
    """Where the plot and the runs go is checked before the data are read and any model loads."""
    if args.plot is not None:
        plot = Path(args.plot).expanduser()
        if plot.suffix.lower() not in PLOT_FORMATS:
            raise UsageError(f"--plot: {args.plot!r} must end in one of {', '.join(PLOT_FORMATS)}")
        if not plot.parent.is_dir():
            raise UsageError(f"--plot: the directory of {args.plot!r} does not exist")
        preflight.require(("matplotlib",), "--plot", "eval")
    if args.save_runs is not None:
        runs = Path(args.save_runs).expanduser()
        if runs.exists() and not runs.is_dir():
            raise UsageError(f"--save-runs: {args.save_runs!r} exists and is not a directory")


def run(args: argparse.Namespace) -> int:
    """Reranking quality on the user's BEIR data; outputs are checked, and the data read, before any model loads."""
    _check_outputs(args)
    preflight.require(("ranx",) if args.run is not None else preflight.EXTRA_MODULES["eval"],
                      "`mxbai-onnx eval`", "eval")
    options = RerankerOptions.from_cli(args)
    from mxbai_integrations.eval import evaluate

    report = evaluate(
        args.models, args.data, run=args.run, depth=args.depth, split=args.split, limit_queries=args.limit_queries,
        instruction=args.instruction, show_progress=not args.quiet, stat_test=args.test, max_p=args.max_p,
        reranker_options=options,
    )
    if args.save_runs is not None:
        paths = report.save_runs(args.save_runs)
        if not args.quiet:
            write(f"wrote {len(paths)} TREC run files to {args.save_runs}\n", sys.stderr)
    if args.plot is not None:
        report.plot(args.plot)
        if not args.quiet:
            write(f"wrote {args.plot}\n", sys.stderr)
    write(report.to_json() + "\n" if args.json else report.format_table())
    return EXIT_OK
