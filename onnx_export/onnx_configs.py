"""Optimum OnnxConfigs for the two score graphs: inputs input_ids/attention_mask, output ``score``."""

from __future__ import annotations

from optimum.exporters.onnx.model_configs import DebertaV2OnnxConfig, Qwen2OnnxConfig

_DYNAMIC = {0: "batch_size", 1: "sequence_length"}


class V1ScoreOnnxConfig(DebertaV2OnnxConfig):
    """DeBERTa-v3 has type_vocab_size 0: no token_type_ids input."""

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {"input_ids": dict(_DYNAMIC), "attention_mask": dict(_DYNAMIC)}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {"score": {0: "batch_size"}}


class V2ScoreOnnxConfig(Qwen2OnnxConfig):
    """The Qwen2 decoder without KV cache; positions are derived from the mask inside the graph."""

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return {"input_ids": dict(_DYNAMIC), "attention_mask": dict(_DYNAMIC)}

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return {"score": {0: "batch_size"}}
