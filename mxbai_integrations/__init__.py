"""Run time: mxbai-rerank v1 and v2 on ONNX Runtime, no torch (onnxruntime, tokenizers, numpy).

    from mxbai_integrations import MxbaiReranker
    reranker = MxbaiReranker("path/to/artifact")
    reranker.rank("query", ["doc one", "doc two"], top_k=1)
"""

from __future__ import annotations

from mxbai_integrations.errors import (
    ArgumentError,
    ArtifactError,
    MissingExtraError,
    ModelNotFoundError,
    MxbaiError,
    NonFiniteScoreError,
    ProviderError,
)

try:  # onnxruntime and onnxruntime-gpu install the same module, so neither is a plain requirement
    import onnxruntime  # noqa: F401
except ImportError as exc:
    raise MissingExtraError(
        f"mxbai-integrations needs ONNX Runtime, and it cannot be imported ({exc}): "
        "pip install 'mxbai-integrations[cpu]' (onnxruntime) or 'mxbai-integrations[gpu]' (onnxruntime-gpu, "
        "for CUDA and TensorRT); install only one of the two"
    ) from exc

from mxbai_integrations.options import RerankerOptions  # noqa: E402
from mxbai_integrations.reranker import MxbaiReranker, RankResult  # noqa: E402
from mxbai_integrations.validation_record import ValidationRecord  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "ArgumentError",
    "ArtifactError",
    "MissingExtraError",
    "ModelNotFoundError",
    "MxbaiError",
    "MxbaiReranker",
    "NonFiniteScoreError",
    "ProviderError",
    "RankResult",
    "RerankerOptions",
    "ValidationRecord",
    "__version__",
]
