"""``mxbai-onnx push``: upload an artifact directory to a Hugging Face Hub model repo (extra ``hub``).

The token comes from huggingface_hub's own places (``HF_TOKEN`` or ``hf auth login``), never a flag,
so it stays out of shell history.
"""

from __future__ import annotations

import argparse

from mxbai_integrations.cli import preflight
from mxbai_integrations.cli.console import write
from mxbai_integrations.cli.errors import EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Check the artifact (files, graph, validation) before anything is sent; print the commit URL."""
    preflight.artifact_dir(args.model)
    from mxbai_integrations.hub import push_artifact

    url = push_artifact(args.model, args.repo_id, private=args.private, revision=args.revision,
                        create_pr=args.create_pr, allow_invalid=args.allow_invalid, license=args.license,
                        commit_message=args.message)
    write(f"pushed {args.model} to {args.repo_id}: {url}\n")
    return EXIT_OK
