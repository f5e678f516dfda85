"""Build time: export mxbai-rerank checkpoints to self-contained ONNX artifacts (extra ``export``)."""

from __future__ import annotations

from onnx_export.exporter import ExportError, export_model

__all__ = ["ExportError", "export_model"]
