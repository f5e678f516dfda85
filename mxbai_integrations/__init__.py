"""Run time: mxbai-rerank v1 and v2 on ONNX Runtime, no torch (onnxruntime, tokenizers, numpy)."""

from __future__ import annotations
