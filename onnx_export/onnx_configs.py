"""Optimum OnnxConfigs for the two score graphs: inputs input_ids/attention_mask, output ``score``."""

from __future__ import annotations

from optimum.exporters.onnx.model_configs import DebertaV2OnnxConfig, Qwen2OnnxConfig

_DYNAMIC = {0: "batch_size", 1: "sequence_length"}


class _ScoreIO:
    """The artifact contract's graph boundary, shared by both families (listed first in the bases)."""

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {"input_ids": dict(_DYNAMIC), "attention_mask": dict(_DYNAMIC)}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {"score": {0: "batch_size"}}


class V1ScoreOnnxConfig(_ScoreIO, DebertaV2OnnxConfig):
    """DeBERTa-v3 has type_vocab_size 0: no token_type_ids input."""


class V2ScoreOnnxConfig(_ScoreIO, Qwen2OnnxConfig):
    """The Qwen2 decoder without KV cache; positions are derived from the mask inside the graph."""
