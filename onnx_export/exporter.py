"""Checkpoint -> artifact: load, patch the score head, export through Optimum, quantize, validate.

Everything is written into a staging directory beside OUT_DIR and renamed into place at the end,
so a failed export leaves nothing half-written behind.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mxbai_integrations.artifact import (
    DTYPES,
    EXTERNAL_DATA_NAME,
    MODEL_NAME,
    TOKENIZER_NAME,
    Manifest,
    ScoreSpec,
    file_record,
    write_manifest,
)

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18
V1_ARCHITECTURES = {"DebertaV2ForSequenceClassification"}
V2_ARCHITECTURES = {"Qwen2ForCausalLM"}
EXPORTERS = ("auto", "optimum", "torch")


class ExportError(RuntimeError):
    """The export ran but its result was refused (validation against the reference failed)."""


def _family(config: Any, source: str) -> str:
    archs = set(getattr(config, "architectures", None) or [])
    if archs & V1_ARCHITECTURES or (config.model_type == "deberta-v2" and getattr(config, "num_labels", 0) == 1):
        return "v1"
    if archs & V2_ARCHITECTURES or config.model_type == "qwen2":
        return "v2"
    raise ValueError(
        f"source: {source!r} is a {config.model_type!r} model ({sorted(archs) or 'no architectures'}); "
        "supported are DeBERTa-v2 sequence classification (mxbai-rerank v1) and Qwen2 causal LM (mxbai-rerank v2)"
    )


def _prepare_out_dir(out_dir: Path, force: bool) -> Path:
    """Check OUT_DIR before any heavy work and return a staging directory beside it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir: {str(out_dir)!r} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise FileExistsError(f"out_dir: {str(out_dir)!r} is not empty; pass force=True (--force) to replace it")
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    except OSError as exc:
        raise PermissionError(f"out_dir: cannot write into {str(parent)!r}: {exc.strerror or exc}") from exc


def _commit(staging: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
    staging.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _load_tokenizer(source: str, revision: str | None) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source, revision=revision)
    except (OSError, ValueError, TypeError) as exc:
        raise FileNotFoundError(f"source: {source!r} has no usable tokenizer: {exc}") from exc
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"source: {source!r} has no fast tokenizer (tokenizer.json); the run time needs one")
    return tok


def _versions() -> dict[str, str]:
    out = {}
    for name in ("mxbai-integrations", "torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxscript",
                 "onnxruntime"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def exporter_available(name: str) -> bool:
    """Whether the ``optimum`` exporter can run here (installed, and transformers within its pin)."""
    if name == "torch":
        return True
    try:
        import optimum.exporters.onnx  # noqa: F401
    except Exception:  # optimum-onnx fails to import on transformers it does not support
        return False
    return True


def resolve_exporter(exporter: str) -> str:
    """``auto`` -> Optimum where its transformers pin allows, else torch's own (dynamo) exporter."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if exporter == "auto":
        return "optimum" if exporter_available("optimum") else "torch"
    if not exporter_available(exporter):
        raise ImportError("exporter 'optimum' needs optimum-onnx, which caps transformers below 4.58: "
                          "pip install 'mxbai-integrations[export-optimum]', or use exporter='torch'")
    return exporter


def _load_score_model(family: str, source: str, *, fp16: bool, revision: str | None,
                      yes_no: tuple[int, int] | None, fused_attention: bool) -> Any:
    """The checkpoint with its forward replaced by the score head (heads.py)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from onnx_export import deberta_patches
    from onnx_export.heads import v1_score_forward, v2_score_forward

    dtype = torch.float16 if fp16 else torch.float32
    if family == "v1":
        model = AutoModelForSequenceClassification.from_pretrained(source, revision=revision, dtype=dtype).eval()
        v1_score_forward(model)
        deberta_patches.apply(model)  # leaner attention graph (deberta_patches.py)
        return model
    assert yes_no is not None
    if fused_attention:
        from onnx_export import attention

        attention.register()
        implementation = attention.ATTN_IMPLEMENTATION
    else:
        implementation = "eager"  # the traced [batch, heads, L, L] attention, kept for comparisons
    model = AutoModelForCausalLM.from_pretrained(source, revision=revision, dtype=dtype,
                                                 attn_implementation=implementation).eval()
    v2_score_forward(model, *yes_no, fused_attention=fused_attention)
    return model


def _export_graph(family: str, source: str, work: Path, *, fp16: bool, opset: int, revision: str | None,
                  yes_no: tuple[int, int] | None, exporter: str, fused_attention: bool, pad_token_id: int) -> Path:
    """Export the score graph into ``work`` with the chosen exporter; returns the model.onnx path."""
    import torch

    model = _load_score_model(family, source, fp16=fp16, revision=revision, yes_no=yes_no,
                              fused_attention=fused_attention)
    if exporter == "torch":
        from onnx_export.torch_exporter import export_with_torch

        path = export_with_torch(model, work / MODEL_NAME, opset=opset, fused_attention=fused_attention and
                                 family == "v2", pad_token_id=pad_token_id, atol=5e-2 if fp16 else 1e-4)
        del model
        return path

    from optimum.exporters.onnx import onnx_export_from_model

    from onnx_export.onnx_configs import V1ScoreOnnxConfig, V2ScoreOnnxConfig

    float_dtype = "fp16" if fp16 else "fp32"
    if family == "v1":
        cfg = V1ScoreOnnxConfig(model.config, task="text-classification", float_dtype=float_dtype)
        post_process = True
    else:
        cfg = V2ScoreOnnxConfig(model.config, task="text-classification", float_dtype=float_dtype,
                                use_past=False, use_past_in_inputs=False)
        # Optimum's tied-weight dedup breaks over 2 GB, and this head does not use the tied matrix.
        post_process = False
    with warnings.catch_warnings():
        # Known and harmless for these graphs: shape checks traced as constants (no KV cache, so the
        # padding branch is never taken) and advanced indexing over non-negative indices.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        onnx_export_from_model(
            model, work, opset=opset, task="text-classification", custom_onnx_configs={"model": cfg},
            do_validation=True, no_post_process=not post_process,
        )
    del model
    return work / MODEL_NAME


def _normalise_external_data(model_path: Path, out_dir: Path) -> None:
    """Copy the graph into ``out_dir`` as model.onnx (+ model.onnx.data when it has external data)."""
    import onnx

    external = [p for p in model_path.parent.iterdir() if p.name != MODEL_NAME and p.name.startswith(MODEL_NAME)]
    if not external:
        shutil.copyfile(model_path, out_dir / MODEL_NAME)
        return
    model = onnx.load(str(model_path), load_external_data=True)
    onnx.save_model(model, str(out_dir / MODEL_NAME), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=EXTERNAL_DATA_NAME, size_threshold=1024)


def export_model(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    dtype: str = "fp32",
    max_length: int | None = None,
    opset: int = DEFAULT_OPSET,
    validate: bool = True,
    force: bool = False,
    revision: str | None = None,
    normalize_shift: float | None = None,
    progress: bool = True,
    exporter: str = "auto",
    fused_attention: bool = True,
) -> Path:
    """Export a Hugging Face checkpoint (hub id or local directory) to an mxbai ONNX artifact.

    Args:
        source: hub id (``HF_HUB_OFFLINE=1`` is honoured through transformers) or a local directory.
        out_dir: artifact directory to create; must be empty unless ``force``.
        dtype: ``fp32``; ``fp16`` for CUDA/TensorRT (exported in half precision by Optimum, float32 at
            the graph boundary); ``int8`` for CPU.
        max_length: default sequence budget recorded in the manifest (v1: the tokenizer's, v2: 8192).
        validate: compare against the reference library; an fp32 artifact outside tolerance is refused.
        normalize_shift: v2 only, override the sigmoid shift used by ``normalize=True``.
        exporter: ``optimum`` (TorchScript through Optimum, transformers < 4.58), ``torch``
            (``torch.onnx.export(dynamo=True)``, any transformers) or ``auto`` (Optimum when it can run).
        fused_attention: v2 only. True (default): attention is ONNX Runtime's GroupQueryAttention, memory
            linear in the length, rows right-padded. False: the traced eager attention ([L, L] per layer),
            kept only to measure against.

    Returns:
        The artifact directory.

    Raises:
        ValueError: unknown dtype or architecture. FileNotFoundError: missing tokenizer/source.
        FileExistsError / PermissionError: OUT_DIR problems. ExportError: validation refused it.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    exporter = resolve_exporter(exporter)
    if max_length is not None and (not isinstance(max_length, int) or max_length <= 0):
        raise ValueError(f"max_length must be a positive int, got {max_length!r}")
    source = os.fspath(source)
    out = Path(out_dir).expanduser().resolve()
    local = Path(source).expanduser()
    if local.exists():
        if not local.is_dir():
            raise NotADirectoryError(f"source: {source!r} is a file, not a checkpoint directory")
        if not (local / "config.json").is_file():
            raise FileNotFoundError(f"source: {source!r} has no config.json; is it a Hugging Face checkpoint?")
        source = str(local.resolve())

    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"source: cannot load a model config from {source!r}: {exc}") from exc
    family = _family(config, source)
    staging = _prepare_out_dir(out, force)
    steps = ["tokenizer", "export", *(["quantize"] if dtype == "int8" else []), *(["validate"] if validate else []),
             "write"]
    bar = tqdm(total=len(steps), desc=f"export {family} {dtype}", unit="step", disable=not progress)
    try:
        bar.set_postfix_str("tokenizer")
        tok = _load_tokenizer(source, revision)
        backend = tok.backend_tokenizer
        backend.no_truncation()
        backend.no_padding()
        backend.save(str(staging / TOKENIZER_NAME))
        prompt = None
        if family == "v1":
            model_max = int(min(tok.model_max_length, config.max_position_embeddings))
            length = max_length or model_max
            score = ScoreSpec(activation="sigmoid")
            pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else config.pad_token_id or 0)
            yes_no = None
        else:
            from onnx_export import v2_prompt

            prompt = v2_prompt.build_prompt_spec(tok, config.max_position_embeddings)
            length = max_length or v2_prompt.DEFAULT_MAX_LENGTH
            ids = v2_prompt.score_token_ids(tok)
            shift = normalize_shift if normalize_shift is not None else v2_prompt.normalize_shift(
                source, config.hidden_size)
            score = ScoreSpec(activation="identity", normalize_shift=shift, token_ids=ids)
            pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else config.pad_token_id)
            yes_no = (ids[v2_prompt.YES], ids[v2_prompt.NO])
        bar.update()

        bar.set_postfix_str("export")
        with tempfile.TemporaryDirectory(prefix="optimum-", dir=staging.parent) as work_dir:
            work = Path(work_dir)
            graph = _export_graph(family, source, work, fp16=dtype == "fp16", opset=opset, revision=revision,
                                  yes_no=yes_no, exporter=exporter, fused_attention=fused_attention,
                                  pad_token_id=pad_id)
            bar.update()
            quantization = None
            if dtype == "int8":
                bar.set_postfix_str("quantize")
                from onnx_export.quantize import quantize_int8

                quantization = quantize_int8(family, graph, staging / MODEL_NAME)
                bar.update()
            else:
                _normalise_external_data(graph, staging)

        files = {name: file_record(staging / name)
                 for name in (MODEL_NAME, EXTERNAL_DATA_NAME, TOKENIZER_NAME) if (staging / name).exists()}
        manifest = Manifest(
            family=family, dtype=dtype,  # type: ignore[arg-type]
            source={"model_id": source if not local.exists() else local.name, "path": source if local.exists()
                    else None, "revision": revision, "architecture": (config.architectures or [None])[0],
                    "model_type": config.model_type, "hidden_size": config.hidden_size,
                    "num_hidden_layers": config.num_hidden_layers,
                    "max_position_embeddings": config.max_position_embeddings},
            opset=opset, max_length=int(length), pad_token_id=pad_id, padding_side="right", score=score,
            files=files, prompt=prompt, created_with={
                **_versions(), "exporter": exporter,
                "attention": ("GroupQueryAttention" if fused_attention else "eager") if family == "v2" else "eager"},
            validation={"skipped": True, "passed": False} if not validate else {},
        )
        if quantization:
            manifest.created_with["quantization"] = str(quantization)
        if validate:
            bar.set_postfix_str("validate")
            from dataclasses import replace

            from onnx_export.validate import validate_artifact

            record = validate_artifact(staging, manifest, source, revision=revision)
            manifest = replace(manifest, validation=record)
            bar.update()
        bar.set_postfix_str("write")
        write_manifest(staging, manifest)
        _commit(staging, out)
        bar.update()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()
    if validate and not manifest.valid:
        v = manifest.validation
        assert v is not None
        # The statistics the verdict was judged by (pooled Spearman for fp16/int8), and why it failed.
        raise ExportError(
            f"validation against {v.reference} failed for {out}: {v.verdict_text()}; failed because "
            f"{'; '.join(v.failures) or 'see the record'}; the artifact is written but marked invalid "
            f"(`mxbai-onnx info {out}`)"
        )
    return out
