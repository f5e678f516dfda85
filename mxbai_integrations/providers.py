"""Execution providers: what to ask onnxruntime for, with which options, and whether it attached.

"auto" walks TensorRT -> CUDA -> CPU among the providers this onnxruntime build offers. An
explicit list is honoured as given. After the session is made, the providers that actually
attached are compared with the request, because onnxruntime silently falls back to the CPU when a
GPU provider cannot load its libraries; that is an error unless the caller allowed fallback.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mxbai_integrations.artifact import CPU_DTYPES
from mxbai_integrations.batching import padded_length
from mxbai_integrations.errors import ArgumentError, ProviderError

logger = logging.getLogger(__name__)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_PROVIDERS = (TRT, CUDA)
AUTO_ORDER = (TRT, CUDA, CPU)
# Short names accepted wherever providers are given (CLI flags, options, adapters' kwargs).
ALIASES = {"cpu": CPU, "cuda": CUDA, "tensorrt": TRT, "trt": TRT}

ProviderSpec = str | tuple[str, dict[str, Any]]


def provider_name(spec: ProviderSpec) -> str:
    return spec if isinstance(spec, str) else spec[0]


def normalize_providers(providers: Any) -> str | tuple[ProviderSpec, ...]:
    """Check the form of a ``providers`` argument; aliases become onnxruntime's names.

    "auto" stays "auto"; a list becomes a tuple of names or (name, options) pairs. Whether this
    onnxruntime build offers them is decided when the session is made (``resolve_providers``).
    """
    if isinstance(providers, str):
        if providers != "auto":
            raise ArgumentError(
                f"providers must be 'auto' or a list of execution provider names, got {providers!r}; "
                f"e.g. providers=[{providers!r}]"
            )
        return "auto"
    if not isinstance(providers, Sequence) or not providers:
        raise ArgumentError(f"providers must be 'auto' or a non-empty list, got {providers!r}")
    out: list[ProviderSpec] = []
    for i, spec in enumerate(providers):
        if isinstance(spec, str) and spec:
            out.append(ALIASES.get(spec.lower(), spec))
        elif (isinstance(spec, Sequence) and len(spec) == 2 and isinstance(spec[0], str)
              and isinstance(spec[1], Mapping)):
            out.append((ALIASES.get(spec[0].lower(), spec[0]), dict(spec[1])))
        else:
            raise ArgumentError(f"providers[{i}] must be a provider name or a (name, options) pair, got {spec!r}")
    return tuple(out)


def parse_providers_text(text: str | Sequence[ProviderSpec]) -> str | tuple[ProviderSpec, ...]:
    """``--providers`` as typed: "auto" or "cuda,cpu" (already-parsed values pass through)."""
    if not isinstance(text, str):
        return normalize_providers(text)
    if text.strip().lower() == "auto":
        return "auto"
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ArgumentError("providers must be 'auto' or a comma-separated list such as 'cuda,cpu'")
    return normalize_providers(names)


def resolve_providers(
    providers: str | Sequence[ProviderSpec], available: Sequence[str], *, artifact_dtype: str,
    allow_fallback: bool = False,
) -> list[ProviderSpec]:
    """Turn the ``providers`` argument into the list to hand to onnxruntime.

    Args:
        providers: "auto", or a list of provider names / (name, options) tuples.
        available: ``onnxruntime.get_available_providers()`` (passed in so tests can fake it).
        artifact_dtype: int8/int4 graphs are CPU graphs, so "auto" does not offer them to a GPU.
        allow_fallback: a requested provider this build does not offer is dropped with a warning
            (the CPU is added last) instead of raising ProviderError.
    """
    providers = normalize_providers(providers)
    if isinstance(providers, str):
        order = (CPU,) if artifact_dtype in CPU_DTYPES else AUTO_ORDER
        chosen: list[ProviderSpec] = [p for p in order if p in available]
        if CPU not in chosen:
            chosen.append(CPU)
        return chosen
    missing = [provider_name(p) for p in providers if provider_name(p) not in available]
    if not missing:
        return list(providers)
    msg = (f"providers: {missing} not offered by this onnxruntime build (available: {list(available)}). "
           "For CUDA/TensorRT install the `gpu` extra (onnxruntime-gpu, replacing onnxruntime).")
    if not allow_fallback:
        raise ProviderError(msg)
    kept = [p for p in providers if provider_name(p) in available]
    if not any(provider_name(p) == CPU for p in kept):
        kept.append(CPU)
    warnings.warn(f"{msg} Running on {[provider_name(p) for p in kept]} (allow_fallback).", RuntimeWarning,
                  stacklevel=3)
    logger.warning("%s Running on %s (allow_fallback).", msg, [provider_name(p) for p in kept])
    return kept


def with_default_options(
    providers: Sequence[ProviderSpec], *, cache_dir: Path, artifact_key: str, batch_size: int, max_length: int,
    artifact_dtype: str,
) -> list[ProviderSpec]:
    """Fill in TensorRT options the caller did not set: precision, engine/timing caches, shape profiles.

    TensorRT runs in fp16 only for fp16 artifacts: an fp32 artifact was validated in fp32 (to 1e-4),
    and silently running it in half precision would serve scores nobody validated. A caller who
    wants that passes ``trt_fp16_enable=True``. The profile's longest sequence is ``max_length``
    rounded up to the padding multiple, since batches are padded to a multiple of 8.
    """
    out: list[ProviderSpec] = []
    for spec in providers:
        name = provider_name(spec)
        user = {} if isinstance(spec, str) else dict(spec[1])
        if name == TRT:
            engine_dir = cache_dir / "trt" / artifact_key
            max_length = padded_length(max_length)
            opt_len = min(512, max_length)
            defaults = {
                "trt_fp16_enable": artifact_dtype == "fp16",
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engine_dir),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(engine_dir),
                "trt_profile_min_shapes": "input_ids:1x1,attention_mask:1x1",
                "trt_profile_opt_shapes": f"input_ids:{batch_size}x{opt_len},attention_mask:{batch_size}x{opt_len}",
                "trt_profile_max_shapes": (
                    f"input_ids:{batch_size}x{max_length},attention_mask:{batch_size}x{max_length}"
                ),
            }
            engine_dir.mkdir(parents=True, exist_ok=True)
            out.append((name, {**defaults, **user}))
        elif user:
            out.append((name, user))
        else:
            out.append(name)
    return out


def trt_max_batch(providers: Sequence[ProviderSpec]) -> int | None:
    """The most rows per batch the TensorRT profile allows (from ``trt_profile_max_shapes``), if set.

    The engine is built for that profile; a larger batch would fail or rebuild the engine, so the
    reranker clamps every batch to it, whatever ``batch_size`` a call or an adapter asks for.
    """
    for spec in providers:
        if provider_name(spec) != TRT or isinstance(spec, str):
            continue
        shapes = spec[1].get("trt_profile_max_shapes")
        if not shapes:
            return None
        batches = []
        for part in str(shapes).split(","):
            _, _, dims = part.strip().rpartition(":")
            try:
                batches.append(int(dims.split("x")[0]))
            except ValueError:
                raise ArgumentError(f"providers: TensorRT option trt_profile_max_shapes {shapes!r} is not "
                                 "'name:BATCHxLENGTH,...'") from None
        return min(batches) if batches else None
    return None


def check_attached(requested: Sequence[ProviderSpec], attached: Sequence[str], *, allow_fallback: bool,
                   auto: bool) -> None:
    """Raise (or warn, when fallback is allowed) if a requested GPU provider did not attach."""
    lost = [provider_name(p) for p in requested if provider_name(p) in GPU_PROVIDERS
            and provider_name(p) not in attached]
    if not lost:
        return
    msg = (f"providers: {lost} were requested but did not attach (session runs on {list(attached)}); "
           "check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs")
    if auto or allow_fallback:
        # "auto" means: the best that works here. Say what was lost, once.
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        logger.warning(msg)
        return
    raise ProviderError(msg + "; pass allow_fallback=True to run anyway")
