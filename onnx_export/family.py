"""Which mxbai-rerank family a checkpoint is, from its config: the one rule export, validation and the CLI share.

It lives apart from ``exporter`` so that validation (which the exporter calls) and the CLI's
preflight can use it without importing the exporter.
"""

from __future__ import annotations

from typing import Any

from mxbai_integrations.errors import ArgumentError

V1_ARCHITECTURES = {"DebertaV2ForSequenceClassification"}
V2_ARCHITECTURES = {"Qwen2ForCausalLM"}


def model_family(config: Any, source: str, *, argument: str = "source") -> str:
    """``v1`` (DeBERTa-v2 sequence classification) or ``v2`` (Qwen2 causal LM) for a checkpoint's config.

    Raises:
        ArgumentError: another architecture; the message starts with ``argument``.
    """
    archs = set(getattr(config, "architectures", None) or [])
    if archs & V1_ARCHITECTURES or (config.model_type == "deberta-v2" and getattr(config, "num_labels", 0) == 1):
        return "v1"
    if archs & V2_ARCHITECTURES or config.model_type == "qwen2":
        return "v2"
    raise ArgumentError(
        f"{argument}: {source!r} is a {config.model_type!r} model ({sorted(archs) or 'no architectures'}); "
        "supported are DeBERTa-v2 sequence classification (mxbai-rerank v1) and Qwen2 causal LM (mxbai-rerank v2)"
    )
