"""Run time: mxbai-rerank v1 and v2 on ONNX Runtime, no torch (onnxruntime, tokenizers, numpy).

    from mxbai_integrations import MxbaiReranker
    reranker = MxbaiReranker("path/to/artifact")
    reranker.rank("query", ["doc one", "doc two"], top_k=1)
"""

from __future__ import annotations

from mxbai_integrations.artifact import ArtifactError, ValidationRecord
from mxbai_integrations.providers import ProviderError
from mxbai_integrations.reranker import MxbaiReranker, NonFiniteScoreError, RankResult

__version__ = "0.1.0"
__all__ = [
    "ArtifactError",
    "MxbaiReranker",
    "NonFiniteScoreError",
    "ProviderError",
    "RankResult",
    "ValidationRecord",
    "__version__",
]
