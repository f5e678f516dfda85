"""``mxbai-onnx info``: what an artifact is and how well it matched the reference, without loading the model."""

from __future__ import annotations

import argparse
import json

from mxbai_integrations.artifact import verify_files
from mxbai_integrations.cli import preflight
from mxbai_integrations.cli.console import error, write
from mxbai_integrations.cli.errors import EXIT_FAILED, EXIT_OK
from mxbai_integrations.cli.render import manifest_lines
from mxbai_integrations.errors import ArtifactError


def run(args: argparse.Namespace) -> int:
    """The files are checked before anything is printed: a truncated artifact gets its error alone (exit 1).

    With ``--checksums`` the summary says how many files' sha256 matched the manifest.
    """
    directory, manifest = preflight.artifact_dir(args.model)
    try:
        verify_files(directory, manifest, checksums=args.checksums)
    except (ArtifactError, OSError) as exc:
        error(exc)
        return EXIT_FAILED
    if args.json:
        write(json.dumps({"path": str(directory), **manifest.to_dict()}, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    write("\n".join(manifest_lines(directory, manifest, checksums_verified=args.checksums)) + "\n")
    return EXIT_OK
