"""``mxbai-onnx validate``: re-run the export-time parity check (extra ``export``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mxbai_integrations.artifact import Manifest, verify_files
from mxbai_integrations.cli import preflight
from mxbai_integrations.cli.console import build_tools_output, write
from mxbai_integrations.cli.errors import EXIT_FAILED, EXIT_OK, UsageError
from mxbai_integrations.cli.render import validation_lines


def _same_family(reference: str, typed: str, directory: Path, manifest: Manifest) -> None:
    """A v2 artifact checked against a v1 checkpoint (or the reverse) is the user's mistake: say both families."""
    found = preflight.checkpoint_family(reference, "--reference")
    if found is None or found[0] == manifest.family:
        return
    family, architecture = found
    ours = manifest.source.architecture or manifest.source.model_type or "?"
    raise UsageError(
        f"--reference: {typed!r} is a {family} checkpoint ({architecture}) but {str(directory)!r} is a "
        f"{manifest.family} artifact ({ours}); validate against the checkpoint it was exported from"
        + (f" ({manifest.source.model_id})" if manifest.source.model_id else "")
    )


def run(args: argparse.Namespace) -> int:
    """Re-run the export-time parity check, e.g. after copying an artifact or upgrading libraries.

    Exit 0 when it passes, 1 when the artifact and the reference disagree beyond the tolerance.
    """
    directory, manifest = preflight.artifact_dir(args.model)
    reference = preflight.checkpoint_source(args.reference, "--reference")
    if Path(reference).is_dir():  # a hub id's config is read by the library, after the download
        _same_family(reference, args.reference, directory, manifest)
    preflight.require((*preflight.EXTRA_MODULES["export"], *preflight.REFERENCE_MODULES[manifest.family]),
                      "`mxbai-onnx validate`", "export")
    verify_files(directory, manifest)
    from onnx_export.validate import validate_artifact

    with build_tools_output(args.verbose):
        record = validate_artifact(directory, manifest, reference, revision=args.revision)
    if args.json:
        write(json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        write("\n".join(validation_lines(record)) + "\n")
    return EXIT_OK if record.passed else EXIT_FAILED
