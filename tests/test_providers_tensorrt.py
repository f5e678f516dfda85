"""mxbai_integrations.providers, TensorRT: the options and optimisation profile the run time requests.

A TensorRT engine is built for one optimisation profile, so no batch the reranker or the adapters
send may have more rows or tokens than the profile allows, whatever batch size the caller asks for;
and an fp32 artifact runs in fp32 unless fp16 is asked for explicitly. A fake session stands in for
onnxruntime on a TensorRT machine and records the shapes it is fed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_edits import QUERY

from mxbai_integrations import MxbaiReranker
from mxbai_integrations import providers as prov
from mxbai_integrations import reranker as reranker_mod

# -- fp32 artifacts run in fp32 -------------------------------------------------------------------------------------


def test_tensorrt_runs_fp32_artifacts_in_fp32_unless_asked(tmp_path: Path) -> None:
    def fp16(dtype: str, spec: prov.ProviderSpec = prov.TRT) -> bool:
        opts = prov.with_default_options([spec], cache_dir=tmp_path, artifact_key="k", batch_size=8, max_length=512,
                                         artifact_dtype=dtype)[0][1]
        return opts["trt_fp16_enable"]

    assert fp16("fp32") is False and fp16("int8") is False
    assert fp16("fp16") is True
    assert fp16("fp32", (prov.TRT, {"trt_fp16_enable": True})) is True


# -- batches stay within the profile --------------------------------------------------------------------------------


class _FakeTrtSession:
    """Stands in for an onnxruntime session on a TensorRT machine: records the shapes it is fed."""

    instances: list[_FakeTrtSession] = []

    def __init__(self, path: str, options: Any, providers: list[Any]) -> None:
        self.requested = providers
        self.shapes: list[tuple[int, int]] = []
        _FakeTrtSession.instances.append(self)

    def get_providers(self) -> list[str]:
        return [prov.TRT, prov.CPU]

    def get_inputs(self) -> list[Any]:
        return [type("Arg", (), {"name": n})() for n in ("input_ids", "attention_mask")]

    def get_outputs(self) -> list[Any]:
        return [type("Arg", (), {"name": "score"})()]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.shapes.append(feeds["input_ids"].shape)
        return [np.zeros(feeds["input_ids"].shape[0], np.float32)]


@pytest.mark.parametrize("providers, profile_rows", [
    ([prov.TRT, prov.CPU], 4),  # the profile is built from the constructor's batch_size
    ([(prov.TRT, {"trt_profile_max_shapes": "input_ids:3x512,attention_mask:3x512"}), prov.CPU], 3),
])
def test_tensorrt_batches_never_exceed_the_profile(
    v1_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, providers: list[Any], profile_rows: int
) -> None:
    from langchain_core.documents import Document

    from mxbai_integrations.langchain import MxbaiCompressor

    monkeypatch.setattr(reranker_mod.ort, "get_available_providers", lambda: [prov.TRT, prov.CUDA, prov.CPU])
    monkeypatch.setattr(reranker_mod.ort, "InferenceSession", _FakeTrtSession)
    _FakeTrtSession.instances.clear()
    reranker = MxbaiReranker(v1_artifact, providers=providers, batch_size=4, cache_dir=tmp_path)
    session = _FakeTrtSession.instances[-1]
    opts = dict(session.requested[0][1])
    assert opts["trt_fp16_enable"] is False  # an fp32 artifact
    docs = [f"document number {i} " * (1 + i % 5) for i in range(23)]
    reranker.score(QUERY, docs, batch_size=32)
    MxbaiCompressor(model=reranker, top_n=3, batch_size=64).compress_documents(
        [Document(page_content=d) for d in docs], QUERY)
    assert session.shapes and max(rows for rows, _ in session.shapes) == profile_rows
    max_len = int(opts["trt_profile_max_shapes"].split(",")[0].split("x")[1])
    assert max(width for _, width in session.shapes) <= max_len
