"""``mxbai-onnx export``: a checkpoint to a validated artifact (extra ``export``)."""

from __future__ import annotations

import argparse

from mxbai_integrations.artifact import read_manifest
from mxbai_integrations.cli import preflight
from mxbai_integrations.cli.console import write
from mxbai_integrations.cli.errors import EXIT_OK
from mxbai_integrations.cli.render import human_bytes, validation_lines


def run(args: argparse.Namespace) -> int:
    """Checkpoint -> artifact. A validation that refused the result raises ExportError: exit 1.

    The user's paths are checked first, before torch and transformers load (seconds), so a mistyped
    SOURCE or a non-empty OUT_DIR is one line at once.
    """
    source = preflight.checkpoint_source(args.source, "SOURCE")
    preflight.out_dir(args.out_dir, force=args.force)
    preflight.require(preflight.EXTRA_MODULES["export"], "`mxbai-onnx export`", "export")
    from onnx_export import export_model

    out = export_model(
        source, args.out_dir, dtype=args.dtype, max_length=args.max_length, opset=args.opset,
        validate=not args.no_validate, force=args.force, revision=args.revision,
        normalize_shift=args.normalize_shift, progress=not args.quiet, exporter=args.exporter,
        # The export's own switch for the build tools' chatter (onnx_export.quiet): shown only under -v.
        verbose=args.verbose,
    )
    manifest = read_manifest(out)
    size = sum(rec.bytes for rec in manifest.files.values())
    write(f"wrote {out} ({manifest.family} {manifest.dtype}, {human_bytes(size)})\n")
    write("\n".join(validation_lines(manifest.validation, cases=False)) + "\n")
    return EXIT_OK
