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
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.reranker import MxbaiReranker, RankResult
from mxbai_integrations.validation_record import ValidationRecord

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
