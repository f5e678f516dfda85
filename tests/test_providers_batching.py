"""Provider selection against faked provider lists, and the batch planner."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

from mxbai_integrations import providers as prov
from mxbai_integrations.batching import fixed_batches, pad_batch, padded_length, plan_batches

GPU_BUILD = [prov.TRT, prov.CUDA, prov.CPU]
CUDA_ONLY = [prov.CUDA, prov.CPU]
CPU_ONLY = [prov.CPU]


@pytest.mark.parametrize("available, dtype, expected", [
    (GPU_BUILD, "fp16", [prov.TRT, prov.CUDA, prov.CPU]),
    (CUDA_ONLY, "fp32", [prov.CUDA, prov.CPU]),
    (CPU_ONLY, "fp32", [prov.CPU]),
    (GPU_BUILD, "int8", [prov.CPU]),  # int8 graphs are CPU graphs
    (["CoreMLExecutionProvider", prov.CPU], "fp32", [prov.CPU]),
])
def test_auto_order(available, dtype, expected):
    assert prov.resolve_providers("auto", available, artifact_dtype=dtype) == expected


def test_explicit_list_is_honoured_in_order():
    asked = [prov.CUDA, (prov.TRT, {"trt_fp16_enable": False}), prov.CPU]
    assert prov.resolve_providers(asked, GPU_BUILD, artifact_dtype="fp32") == asked


def test_explicit_missing_provider_names_it_and_the_extra():
    with pytest.raises(prov.ProviderError, match=r"\['CUDAExecutionProvider'\] not offered.*`gpu` extra"):
        prov.resolve_providers([prov.CUDA], CPU_ONLY, artifact_dtype="fp32")


def test_tensorrt_defaults_and_user_overrides(tmp_path):
    specs = prov.with_default_options([(prov.TRT, {"trt_fp16_enable": False}), prov.CUDA, prov.CPU],
                                      cache_dir=tmp_path, artifact_key="abc123", batch_size=16, max_length=8271,
                                      artifact_dtype="fp16")
    name, opts = specs[0]
    assert name == prov.TRT and opts["trt_fp16_enable"] is False
    assert opts["trt_engine_cache_enable"] and opts["trt_engine_cache_path"] == str(tmp_path / "trt" / "abc123")
    # batches are padded to a multiple of 8, so the longest row of 8271 tokens is fed as 8272
    assert opts["trt_profile_max_shapes"] == "input_ids:16x8272,attention_mask:16x8272"
    assert opts["trt_profile_opt_shapes"] == "input_ids:16x512,attention_mask:16x512"
    assert (tmp_path / "trt" / "abc123").is_dir()
    assert specs[1:] == [prov.CUDA, prov.CPU]


def test_gpu_that_did_not_attach_raises_unless_fallback_allowed():
    requested = [prov.CUDA, prov.CPU]
    with pytest.raises(prov.ProviderError, match="did not attach.*allow_fallback=True"):
        prov.check_attached(requested, [prov.CPU], allow_fallback=False, auto=False)
    with pytest.warns(RuntimeWarning, match="did not attach"):
        prov.check_attached(requested, [prov.CPU], allow_fallback=True, auto=False)
    with pytest.warns(RuntimeWarning, match="did not attach"):
        prov.check_attached(requested, [prov.CPU], allow_fallback=False, auto=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prov.check_attached(requested, [prov.CUDA, prov.CPU], allow_fallback=False, auto=False)


def test_plan_batches_respects_caps_and_covers_every_row():
    rng = random.Random(0)
    lengths = [rng.randint(1, 700) for _ in range(500)]
    batches = plan_batches(lengths, batch_size=32, max_batch_tokens=4096)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for batch in batches:
        width = padded_length(max(lengths[i] for i in batch))
        assert len(batch) <= 32
        assert len(batch) * width <= 4096 or len(batch) == 1
    # Sorted by length: far less padding than input-order batches of the same size.
    def pad_tokens(bs):
        return sum(len(b) * padded_length(max(lengths[i] for i in b)) for b in bs)
    assert pad_tokens(batches) < 0.75 * pad_tokens(fixed_batches(len(lengths), batch_size=32))


def test_oversized_row_gets_its_own_batch():
    assert plan_batches([10_000, 5, 5], batch_size=8, max_batch_tokens=1024) == [[0], [1, 2]]


def test_pad_batch_left_and_right():
    ids, mask = pad_batch([[5, 6, 7], [9]], pad_id=0)
    assert ids.shape == (2, 8) and ids.dtype == np.int64
    assert ids[1, :2].tolist() == [9, 0] and mask[1].sum() == 1
    ids, mask = pad_batch([[5, 6, 7], [9]], pad_id=0, side="left")
    assert ids[1, -1] == 9 and mask[1, -1] == 1 and mask[1, 0] == 0
