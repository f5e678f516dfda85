"""Providers -> onnxruntime session -> attach check, in one trip (fastembed's ``_load_onnx_model`` shape).

onnxruntime silently falls back to the CPU when a GPU provider cannot load its libraries, so the
providers that actually attached are compared with the request before the session is used: a GPU
provider that did not attach is an error unless the caller allowed fallback.

Examples:
    >>> from mxbai_integrations.artifact import read_manifest
    >>> from mxbai_integrations.options import RerankerOptions
    >>> manifest = read_manifest("artifact")  # doctest: +SKIP
    >>> loaded = load_session("artifact", manifest, RerankerOptions(providers=["cpu"]),
    ...                       graph_max_length=512)  # doctest: +SKIP
    >>> loaded.providers  # doctest: +SKIP
    ['CPUExecutionProvider']
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from mxbai_integrations import providers as prov
from mxbai_integrations.artifact import MODEL_NAME, Manifest
from mxbai_integrations.cache import cache_root
from mxbai_integrations.errors import ArtifactError
from mxbai_integrations.options import RerankerOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedSession:
    """An onnxruntime session and what was learned while making it.

    Attributes:
        session: the session (thread-safe for ``run``).
        providers: the providers that attached, in onnxruntime's order.
        max_rows: the TensorRT profile's largest batch (no batch may be larger), else None.
        io_binding: run through IO binding (CUDA first: the output is bound on the device).
    """

    session: ort.InferenceSession
    providers: list[str]
    max_rows: int | None
    io_binding: bool

    @property
    def on_gpu(self) -> bool:
        return self.providers[0] in prov.GPU_PROVIDERS


def default_session_options(options: RerankerOptions) -> ort.SessionOptions:
    """The session options used unless the caller passes their own."""
    session_options = ort.SessionOptions()
    session_options.log_severity_level = 3
    if options.intra_op_num_threads:
        session_options.intra_op_num_threads = options.intra_op_num_threads
    return session_options


# The version floor per provider. On the CPU, v2 graphs' GroupQueryAttention runs MLAS's flash kernel, and
# every CPU figure in benchmarks/RESULTS.md was measured on onnxruntime >= 1.32: the `cpu` extra requires
# it. CUDA's GroupQueryAttention kernel is older, so the `gpu` extra accepts onnxruntime-gpu from 1.18
# (the newest onnxruntime-gpu, 1.31.1, is below the CPU floor); a CPU fallback there gets this warning.
CPU_ORT_FLOOR = (1, 32)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _warn_below_cpu_floor(provider: str, manifest: Manifest) -> None:
    if provider == prov.CPU and manifest.family == "v2" and _version_tuple(ort.__version__) < CPU_ORT_FLOOR:
        warnings.warn(
            f"onnxruntime {ort.__version__} runs this v2 artifact on the CPU below the CPU floor "
            f"{'.'.join(map(str, CPU_ORT_FLOOR))}: scores are right, but the speed published for the CPU "
            "was measured on onnxruntime >= 1.32 (install the `cpu` extra on CPU-only machines)",
            UserWarning, stacklevel=4)


def _warn_fp32_attention_off_gpu(provider: str, manifest: Manifest) -> None:
    # onnxruntime registers CUDA GroupQueryAttention for float16 and bfloat16 only: in an fp32 v2 graph on
    # CUDA every attention node falls back to the CPU provider, with copies around each.
    if provider == prov.CUDA and manifest.family == "v2" and manifest.dtype == "fp32":
        warnings.warn("an fp32 v2 artifact on CUDA runs its attention on the CPU (onnxruntime has no fp32 "
                      "CUDA kernel for GroupQueryAttention): export and load the fp16 artifact for the GPU",
                      UserWarning, stacklevel=4)


def load_session(
    path: str | os.PathLike[str],
    manifest: Manifest,
    options: RerankerOptions,
    *,
    graph_max_length: int,
    session_options: ort.SessionOptions | None = None,
) -> LoadedSession:
    """Resolve the providers, make the session, and check that what was asked for attached.

    Args:
        path: the artifact directory.
        manifest: its manifest (the dtype decides the "auto" order and TensorRT's precision).
        options: providers, fallback, batch size (TensorRT profile), cache dir, threads.
        graph_max_length: the longest row the graph will see (TensorRT's profile).
        session_options: used as is when given.

    Raises:
        ProviderError: a requested provider is not offered or did not attach (unless fallback).
        ArtifactError: onnxruntime could not load the graph.
    """
    directory = Path(path)
    requested = prov.resolve_providers(options.providers, ort.get_available_providers(),
                                       artifact_dtype=manifest.dtype, allow_fallback=options.allow_fallback)
    requested = prov.with_default_options(
        requested, cache_dir=cache_root(options.cache_dir), artifact_key=manifest.files[MODEL_NAME].sha256[:16],
        batch_size=options.batch_size, max_length=graph_max_length, artifact_dtype=manifest.dtype)
    try:
        session = ort.InferenceSession(str(directory / MODEL_NAME), session_options or default_session_options(options),
                                       providers=requested)
    except Exception as exc:  # onnxruntime raises its own exception types for graphs it cannot load
        raise ArtifactError(f"model: onnxruntime could not load {directory / MODEL_NAME}: {exc}") from exc
    attached = session.get_providers()
    prov.check_attached(requested, attached, allow_fallback=options.allow_fallback,
                        auto=isinstance(options.providers, str))
    _warn_below_cpu_floor(attached[0], manifest)
    _warn_fp32_attention_off_gpu(attached[0], manifest)
    max_rows = prov.trt_max_batch(requested) if prov.TRT in attached else None
    loaded = LoadedSession(session=session, providers=attached, max_rows=max_rows, io_binding=attached[0] == prov.CUDA)
    logger.debug("session for %s on %s", directory, attached)
    return loaded
