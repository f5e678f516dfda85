"""The score graph through torch's own exporter: ``torch.onnx.export(dynamo=True)`` and onnxscript.

This path needs no Optimum, so it runs on today's stack (transformers 5.x, sentence-transformers 6.x)
as well as on the pinned one. It exports exactly the patched forward that ``heads.py`` builds, with
the v2 attention cores as ``com.microsoft.GroupQueryAttention`` (see ``attention.py``), and checks the
ONNX Runtime output against the same torch forward on the export example, like Optimum's validation.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mxbai_integrations.errors import ExportError

logger = logging.getLogger(__name__)

# An example that export must not specialise on: batch and length above 1, right-padded rows.
_EXAMPLE_BATCH, _EXAMPLE_LENGTH = 2, 24
_PROTO_LIMIT = 2**31 - 1


class ScoreModule(torch.nn.Module):
    """The patched model as torch.export sees it: (input_ids, attention_mask) -> score."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)["score"]


def _example(vocab_size: int, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, min(vocab_size, 1000), (_EXAMPLE_BATCH, _EXAMPLE_LENGTH), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, _EXAMPLE_LENGTH // 2:] = 0
    ids[mask == 0] = pad_token_id
    return ids, mask


def export_with_torch(model: Any, out_path: Path, *, opset: int, fused_attention: bool, pad_token_id: int,
                      atol: float) -> Path:
    """Export ``model`` (a patched score model) to ``out_path``; raise when ORT disagrees with torch.

    Args:
        model: the model after ``heads.v1_score_forward`` / ``v2_score_forward``.
        out_path: where model.onnx goes (model.onnx.data beside it when the graph is over 2 GB).
        opset: the default-domain opset.
        fused_attention: the v2 graph calls ``mxbai_onnx::gqa``: translate it to GroupQueryAttention.
        pad_token_id: used to pad the export example.
        atol: largest allowed |ORT - torch| on the example (Optimum's check, done here).
    """
    import onnxruntime as ort

    from onnx_export import attention

    wrapper = ScoreModule(model).eval()
    ids, mask = _example(int(model.config.vocab_size), pad_token_id)
    dims = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    table = attention.dynamo_translation_table() if fused_attention else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        program = torch.onnx.export(
            wrapper, (ids, mask), dynamo=True, input_names=["input_ids", "attention_mask"], output_names=["score"],
            dynamic_shapes={"input_ids": dims, "attention_mask": dims}, opset_version=opset,
            custom_translation_table=table, verbose=False, optimize=True,
        )
        expected = wrapper(ids, mask).to(torch.float32).numpy()
    assert program is not None
    big = sum(int(np.prod(p.shape)) * p.element_size() for p in model.parameters()) > _PROTO_LIMIT // 2
    # The exporter's caller renames external data to the artifact's model.onnx.data.
    program.save(str(out_path), external_data=big)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(out_path), options, providers=["CPUExecutionProvider"])
    got = session.run(["score"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
    if not np.all(np.isfinite(got)) or diff > atol:
        raise ExportError(f"torch exporter: ONNX Runtime and torch disagree on the export example "
                           f"(max abs diff {diff:.3g} > {atol:g})")
    logger.info("torch exporter: ORT vs torch on the example: max abs diff %.3g", diff)
    return out_path
