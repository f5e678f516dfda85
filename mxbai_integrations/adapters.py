"""What the LangChain and LlamaIndex adapters share: the lazily loaded reranker and result selection."""

from __future__ import annotations

import os
import threading
from typing import Any

from mxbai_integrations.reranker import MxbaiReranker, RankResult


class SharedReranker:
    """The ``MxbaiReranker`` behind an adapter: created on first use, then shared.

    Building a pipeline should not load a model, and every call, thread and (deep) copy of the
    adapter should use the same ONNX session rather than load another. The source is compared by
    value, so a deep copy's equal ``model`` keeps the session; a changed ``model`` loads anew.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reranker: MxbaiReranker | None = None
        self._source: Any = None

    def get(self, model: str | os.PathLike[str] | MxbaiReranker | None) -> MxbaiReranker:
        if isinstance(model, MxbaiReranker):
            return model
        reranker = self._reranker
        if reranker is not None and self._source == model:
            return reranker
        with self._lock:
            if self._reranker is None or self._source != model:
                self._reranker = MxbaiReranker(model)
                self._source = model
            return self._reranker

    def loaded(self, model: Any) -> MxbaiReranker | None:
        """The reranker for ``model`` if it is already loaded, else None (never loads)."""
        if isinstance(model, MxbaiReranker):
            return model
        return self._reranker if self._reranker is not None and self._source == model else None

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedReranker:
        return self


def model_to_str(model: str | os.PathLike[str] | MxbaiReranker | None) -> str | None:
    """How ``model`` is serialised: as given, or a ``MxbaiReranker`` as its artifact directory."""
    if isinstance(model, MxbaiReranker):
        return str(model.path)
    return None if model is None else os.fspath(model)


def select(results: list[RankResult], *, score_threshold: float | None, top_n: int | None) -> list[RankResult]:
    """The threshold first, then the best ``top_n`` (results are already sorted best first)."""
    if score_threshold is not None:
        results = [r for r in results if r.score >= score_threshold]
    return results if top_n is None else results[:top_n]
