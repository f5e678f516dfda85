"""mxbai_integrations.errors: the exception hierarchy callers catch.

A provider that is not available is a bad argument as much as a run-time failure, so
``ProviderError`` is both a ValueError and a RuntimeError, and code that catches ValueError around
``MxbaiReranker(...)`` sees it.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from mxbai_integrations import MxbaiReranker, ProviderError


def test_provider_error_is_a_value_error(v1_artifact: Path) -> None:
    assert issubclass(ProviderError, ValueError) and issubclass(ProviderError, RuntimeError)
    with pytest.raises(ValueError, match="NoSuchExecutionProvider"):
        MxbaiReranker(v1_artifact, providers=["NoSuchExecutionProvider"])
    assert "NoSuchExecutionProvider" not in ort.get_available_providers()
