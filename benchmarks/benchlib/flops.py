"""Model work in FLOPs, and the matmul rate the same process reaches: the two ends of "% of peak".

``model_flops`` counts the forward FLOPs of the real (unpadded) tokens, so padding, and the v2
reference's full-vocabulary lm_head, count as waste against the backend that does them.
``child_peak`` measures the best fp32 (CPU) or fp16/bf16 (CUDA) matmul rate of numpy, onnxruntime
and torch at the benchmark's thread count, in a child process of its own.

Example:
    >>> cfg = {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
    ...        "num_attention_heads": 4, "num_key_value_heads": 2}
    >>> model_flops(cfg, [10])
    1525888.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchlib.timing import best_time

PEAK_N = 2048
GPU_PEAK_N = 8192


def model_flops(config: dict[str, Any], lengths: Sequence[int]) -> float:
    """Forward FLOPs (2 per multiply-add) over unpadded rows of the given token lengths.

    Per row of n tokens, L layers, hidden d, MLP width f:
      v1 (DeBERTa-v2): L * [2n(4d^2 + 2df) + 4n^2 d + 8nPd] + 2d^2 + 2d, where 4d^2 is Q/K/V/O,
        4n^2 d is QK^T and AV, and 8nPd the disentangled c2p and p2c scores against the 2P relative
        position embeddings (P = position_buckets); the relative-embedding projections (once per
        batch), layer norms, softmax and GELU are left out (< 2%). 2d^2 + 2d is the pooler and head.
      v2 (Qwen2, GQA): L * [2n(2d^2 + 2d*d_kv + 3df) + 4n^2 d] + 2d, with d_kv = kv_heads * head_dim
        (K and V are narrow), 3df the SwiGLU MLP, 4n^2 d the full square of QK^T and AV as dense
        kernels compute it (causal masking would halve it), 2d the one-row score head. The full
        151,936-wide lm_head the reference applies at every position (2*n*d*V) is not model work.
    """
    d, n_layers, f = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    total = 0.0
    if config.get("model_type") == "deberta-v2":
        buckets = config.get("position_buckets", 256)
        span = buckets if buckets > 0 else config.get("max_position_embeddings", 512)
        n_pos = len(config.get("pos_att_type") or []) if config.get("relative_attention") else 0
        for n in lengths:
            per_layer = 2 * n * (4 * d * d + 2 * d * f) + 4 * n * n * d + n_pos * 2 * n * (2 * span) * d
            total += n_layers * per_layer + 2 * d * d + 2 * d
        return total
    heads = config["num_attention_heads"]
    d_kv = config.get("num_key_value_heads", heads) * (d // heads)
    for n in lengths:
        per_layer = 2 * n * (2 * d * d + 2 * d * d_kv + 3 * d * f) + 4 * n * n * d
        total += n_layers * per_layer + 2 * d
    return total


@dataclass(frozen=True)
class MatmulPeaks:
    """Best matmul FLOP/s per library (``numpy_fp32``, ``ort_fp32``, ``torch_fp32``; on CUDA fp16/bf16)."""

    size: int
    rates: dict[str, float] = field(default_factory=dict)
    gpu_name: str | None = None

    @property
    def best(self) -> float:
        return max(self.rates.values(), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form rerank_bench has always written: the rates, then ``size`` (and ``gpu_name``)."""
        out: dict[str, Any] = {**self.rates, "size": self.size}
        if self.gpu_name is not None:
            out["gpu_name"] = self.gpu_name
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatmulPeaks:
        rates = {k: float(v) for k, v in data.items() if isinstance(v, float)}
        return cls(size=int(data.get("size") or 0), rates=rates, gpu_name=data.get("gpu_name"))


def _ort_matmul_session(n: int, threads: int, provider: str, fp16: bool) -> tuple[Any, Any]:
    """An onnxruntime session of one [n, n] x [n, n] MatMul, the weight held as an initializer."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    np_dtype, onnx_dtype = (np.float16, TensorProto.FLOAT16) if fp16 else (np.float32, TensorProto.FLOAT)
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np_dtype), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["A", "W"], ["Y"])], "peak",
                              [helper.make_tensor_value_info("A", onnx_dtype, [n, n])],
                              [helper.make_tensor_value_info("Y", onnx_dtype, [n, n])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=[provider]), np_dtype


def cpu_peaks(threads: int, n: int = PEAK_N) -> MatmulPeaks:
    """fp32 matmul FLOP/s of numpy, onnxruntime and (if installed) torch at ``threads`` threads."""
    flops = 2.0 * n**3
    rates: dict[str, float] = {}
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            rates["numpy_fp32"] = flops / best_time(lambda: a @ b, 5)
    except ImportError:
        rates["numpy_fp32"] = flops / best_time(lambda: a @ b, 5)
    sess, _ = _ort_matmul_session(n, threads, "CPUExecutionProvider", fp16=False)
    rates["ort_fp32"] = flops / best_time(lambda: sess.run(None, {"A": a}), 5)
    try:
        import torch

        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        rates["torch_fp32"] = flops / best_time(lambda: ta @ tb, 5)
    except ImportError:
        pass
    return MatmulPeaks(size=n, rates=rates)


def cuda_peaks(n: int = GPU_PEAK_N) -> MatmulPeaks:
    """fp16/bf16 matmul FLOP/s of torch and fp16 of onnxruntime's CUDA provider (I/O bound on the device)."""
    import onnxruntime as ort
    import torch

    flops = 2.0 * n**3
    rates: dict[str, float] = {}
    for name, dt in (("torch_fp16", torch.float16), ("torch_bf16", torch.bfloat16)):
        ta = torch.randn(n, n, device="cuda", dtype=dt)
        tb = torch.randn(n, n, device="cuda", dtype=dt)

        def mm(x: Any = ta, y: Any = tb) -> None:
            x @ y
            torch.cuda.synchronize()

        rates[name] = flops / best_time(mm, 10)
    sess, np_dtype = _ort_matmul_session(n, 1, "CUDAExecutionProvider", fp16=True)
    a_dev = ort.OrtValue.ortvalue_from_numpy(np.random.default_rng(0).standard_normal((n, n)).astype(np_dtype),
                                             "cuda", 0)
    binding = sess.io_binding()
    binding.bind_ortvalue_input("A", a_dev)
    binding.bind_output("Y", "cuda")

    def ort_mm() -> None:
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()

    rates["ort_fp16"] = flops / best_time(ort_mm, 10)
    return MatmulPeaks(size=n, rates=rates, gpu_name=torch.cuda.get_device_name(0))


def child_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """The child-process entry: the peaks for ``spec["device"]`` at ``spec["threads"]``."""
    peaks = cpu_peaks(spec["threads"]) if spec["device"] == "cpu" else cuda_peaks()
    return peaks.to_dict()
