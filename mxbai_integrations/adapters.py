"""What the LangChain and LlamaIndex adapters share: the lazily loaded reranker and result selection."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from mxbai_integrations.errors import ArgumentError
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.reranker import MxbaiReranker, RankResult


def check_reranker_kwargs(kwargs: Any, model: Any) -> dict[str, Any]:
    """Validate an adapter's ``reranker_kwargs`` where it enters, naming the bad key or value.

    They are ``RerankerOptions`` fields (the ones that survive serialisation: ``session_options``
    is an onnxruntime object, so pass a built MxbaiReranker for that), checked by that record.
    """
    RerankerOptions.from_dict(kwargs, where="reranker_kwargs")
    if kwargs and isinstance(model, MxbaiReranker):
        raise ArgumentError("reranker_kwargs: model is an already loaded MxbaiReranker, so its options are fixed; "
                            "pass the artifact path or hub id as model to set them here")
    return dict(kwargs)


def _key(model: Any, kwargs: dict[str, Any]) -> tuple[str | None, str]:
    """What identifies a loaded reranker: the source (compared by value) and its options."""
    source = None if model is None else os.fspath(model)
    return source, json.dumps(kwargs, sort_keys=True, default=repr)


class SharedReranker:
    """The ``MxbaiReranker`` behind an adapter: created on first use, then shared.

    Building a pipeline should not load a model, and every call, thread and (deep) copy of the
    adapter should use the same ONNX session rather than load another. Copies share this object,
    and it holds one slot per (source, options): a copy whose ``model`` is equal keeps the
    session, and a copy given another ``model`` gets a slot of its own instead of evicting (and
    racing with) the original's. A slot is written once, under the lock, and read as one value,
    so a thread can never get one model's reranker for another model.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str | None, str], MxbaiReranker] = {}

    def get(self, model: str | os.PathLike[str] | MxbaiReranker | None,
            reranker_kwargs: dict[str, Any] | None = None) -> MxbaiReranker:
        if isinstance(model, MxbaiReranker):
            return model
        kwargs = reranker_kwargs or {}
        key = _key(model, kwargs)
        reranker = self._slots.get(key)
        if reranker is not None:
            return reranker
        with self._lock:
            reranker = self._slots.get(key)
            if reranker is None:
                reranker = MxbaiReranker(model, **kwargs)
                self._slots[key] = reranker
            return reranker

    def loaded(self, model: Any, reranker_kwargs: dict[str, Any] | None = None) -> MxbaiReranker | None:
        """The reranker for ``model`` if it is already loaded, else None (never loads)."""
        if isinstance(model, MxbaiReranker):
            return model
        return self._slots.get(_key(model, reranker_kwargs or {}))

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
