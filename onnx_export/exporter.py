"""Checkpoint -> artifact: load, patch the score head, export through Optimum, quantize, validate.

Everything is written into a staging directory beside OUT_DIR and renamed into place at the end,
so a failed export leaves nothing half-written behind. The staging directory is made by mkdtemp
(mode 0700); before it is renamed into place, the artifact's directory and files get the modes the
process umask gives new files (0755 / 0644 under umask 022), so other users, service accounts and
Ray workers can read it as they could any file the user writes.

The artifact's tokenizer.json is the checkpoint's own, byte for byte (``checkpoint_tokenizer.py``),
never a pipeline re-serialized by the installed transformers.

``_export`` runs the steps in order (~120 lines) on purpose: one progress bar over them, and each
step's cleanup beside it; the steps themselves are the functions above it.

Memory: the traced model and the exporter's graph are released (and the freed heap handed back to
the system) before validation, and validation scores the artifact before it loads the reference, so
the peak is the largest of the three steps rather than their sum.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.metadata
import logging
import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mxbai_integrations.artifact import (
    CPU_DTYPES,
    DTYPES,
    EXTERNAL_DATA_NAME,
    MODEL_NAME,
    TOKENIZER_NAME,
    Manifest,
    ScoreSpec,
    file_record,
    write_manifest,
)
from mxbai_integrations.errors import ArgumentError, ExportError, MissingExtraError, ModelNotFoundError
from onnx_export.family import model_family

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18
EXPORTERS = ("auto", "optimum", "torch")


def _process_umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask would set it briefly)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """Give ``root`` and everything in it the modes new files get under the umask (mkdtemp made it 0700)."""
    mask = _process_umask()
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o777 & ~mask)
        for name in files:
            path = Path(directory, name)
            executable = path.stat().st_mode & stat.S_IXUSR
            os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def release_memory() -> None:
    """Collect garbage cycles (a patched model's forward closes over the model) and return freed heap.

    glibc keeps freed small blocks in the process; ``malloc_trim`` hands them back so the next
    step's allocations start from the live set, not from the trace's high-water mark.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


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


def _token_id(tokenizer: Any, config: dict[str, Any], key: str) -> int | None:
    """The id of ``tokenizer_config.json``'s ``key`` token (e.g. pad_token) in the checkpoint's tokenizer."""
    value = config.get(key)
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str):
        return None
    return tokenizer.token_to_id(value)


def _model_max_length(config: dict[str, Any]) -> int | None:
    value = config.get("model_max_length")
    # transformers writes 1e30 ("no limit") for tokenizers without one.
    return int(value) if isinstance(value, (int, float)) and 0 < value < 1e9 else None


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
        raise ArgumentError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if exporter == "auto":
        return "optimum" if exporter_available("optimum") else "torch"
    if not exporter_available(exporter):
        raise MissingExtraError("exporter 'optimum' needs optimum-onnx, which caps transformers below 4.58: "
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


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of a graph that can hold external data: initializers and attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _normalise_external_data(model_path: Path, out_dir: Path) -> None:
    """Put the graph into ``out_dir`` as model.onnx (+ model.onnx.data when it has external data).

    An exporter that wrote one external data file (Optimum: model.onnx_data; torch: model.onnx.data)
    has it moved and renamed, and only the references in the small graph proto rewritten: loading the
    weights to save them again held the whole graph in memory once more (6 GB for large-v2, on top of
    what the trace left). Other layouts (a file per tensor) are gathered into one file the slow way.
    """
    import onnx

    external = [p for p in model_path.parent.iterdir() if p.name != MODEL_NAME and p.name.startswith(MODEL_NAME)]
    if not external:
        shutil.copyfile(model_path, out_dir / MODEL_NAME)
        return
    model = onnx.load(str(model_path), load_external_data=False)
    stored = [t for t in _tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    locations = {entry.value for t in stored for entry in t.external_data if entry.key == "location"}
    if len(locations) == 1 and (model_path.parent / next(iter(locations))).is_file():
        for tensor in stored:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = EXTERNAL_DATA_NAME
        shutil.move(str(model_path.parent / next(iter(locations))), str(out_dir / EXTERNAL_DATA_NAME))
        onnx.save_model(model, str(out_dir / MODEL_NAME))
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
    verbose: bool = False,
) -> Path:
    """Export a Hugging Face checkpoint (hub id or local directory) to an mxbai ONNX artifact.

    Args:
        source: hub id (``HF_HUB_OFFLINE=1`` is honoured through huggingface_hub) or a local directory.
        out_dir: artifact directory to create; must be empty unless ``force``.
        dtype: ``fp32``; ``fp16`` for CUDA/TensorRT (exported in half precision by Optimum, float32 at
            the graph boundary); ``int8`` (and ``int4`` for v2) for CPU.
        max_length: default sequence budget recorded in the manifest (v1: the tokenizer's, v2: 8192).
        validate: compare against the reference library; an fp32 artifact outside tolerance is refused.
        normalize_shift: v2 only, override the sigmoid shift used by ``normalize=True``.
        progress: show one progress bar over the export's steps.
        exporter: ``optimum`` (TorchScript through Optimum, transformers < 4.58), ``torch``
            (``torch.onnx.export(dynamo=True)``, any transformers) or ``auto`` (Optimum when it can run).
        fused_attention: v2 only. True (default): attention is ONNX Runtime's GroupQueryAttention, memory
            linear in the length, rows right-padded. False: the traced eager attention ([L, L] per layer),
            kept only to measure against.
        verbose: show the build libraries' own logging, warnings and progress bars (transformers, torch,
            optimum); by default only our progress bar and our own log records appear (``quiet.py``).

    Returns:
        The artifact directory.

    Raises:
        ArgumentError (a ValueError): unknown dtype or architecture. ModelNotFoundError (a
        FileNotFoundError): missing source, config or tokenizer. FileExistsError / PermissionError:
        OUT_DIR problems. ExportError: validation refused it.

    Examples:
        >>> from onnx_export import export_model
        >>> export_model("mixedbread-ai/mxbai-rerank-base-v2", "./base-v2-onnx", dtype="fp32")  # doctest: +SKIP
        PosixPath('/home/me/base-v2-onnx')
    """
    if dtype not in DTYPES:
        raise ArgumentError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    exporter = resolve_exporter(exporter)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length <= 0):
        raise ArgumentError(f"max_length must be a positive int, got {max_length!r}")
    source = os.fspath(source)
    out = Path(out_dir).expanduser().resolve()
    local = Path(source).expanduser()
    if local.exists():
        if not local.is_dir():
            raise NotADirectoryError(f"source: {source!r} is a file, not a checkpoint directory")
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(f"source: {source!r} has no config.json; is it a Hugging Face checkpoint?")
        source = str(local.resolve())

    from onnx_export.quiet import library_output

    with library_output(verbose):
        return _export(source, out, local.exists(), dtype=dtype, max_length=max_length, opset=opset,
                       validate=validate, force=force, revision=revision, normalize_shift=normalize_shift,
                       progress=progress, exporter=exporter, fused_attention=fused_attention)


def _export(source: str, out: Path, is_local: bool, *, dtype: str, max_length: int | None, opset: int,
            validate: bool, force: bool, revision: str | None, normalize_shift: float | None, progress: bool,
            exporter: str, fused_attention: bool) -> Path:
    from transformers import AutoConfig

    from onnx_export.checkpoint_tokenizer import locate

    try:
        config = AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"source: cannot load a model config from {source!r}: {exc}") from exc
    family = model_family(config, source)
    checkpoint_tokenizer = locate(source, family=family, revision=revision)
    staging = _prepare_out_dir(out, force)
    steps = ["tokenizer", "export", *(["quantize"] if dtype in CPU_DTYPES else []), *(["validate"] if validate else []),
             "write"]
    bar = tqdm(total=len(steps), desc=f"export {family} {dtype}", unit="step", disable=not progress)
    try:
        bar.set_postfix_str("tokenizer")
        # The checkpoint's own file, byte for byte (or the conversion of its sentencepiece / BPE files).
        checkpoint_tokenizer.write(staging / TOKENIZER_NAME)
        tok = checkpoint_tokenizer.load()
        tok.no_truncation()
        tok.no_padding()
        tok_config = checkpoint_tokenizer.config
        prompt = None
        if family == "v1":
            limits = [n for n in (_model_max_length(tok_config), config.max_position_embeddings) if n]
            length = max_length or int(min(limits))
            score = ScoreSpec(activation="sigmoid")
            pad = _token_id(tok, tok_config, "pad_token")
            pad_id = int(pad if pad is not None else config.pad_token_id or 0)
            yes_no = None
        else:
            from onnx_export import v2_prompt

            prompt = v2_prompt.build_prompt_spec(tok, config.max_position_embeddings)
            length = max_length or v2_prompt.DEFAULT_MAX_LENGTH
            ids = v2_prompt.score_token_ids(tok)
            shift = normalize_shift if normalize_shift is not None else v2_prompt.normalize_shift(
                source, config.hidden_size)
            score = ScoreSpec(activation="identity", normalize_shift=shift, token_ids=ids)
            pad = _token_id(tok, tok_config, "pad_token")
            pad_id = int(pad if pad is not None else config.pad_token_id)
            yes_no = (ids[v2_prompt.YES], ids[v2_prompt.NO])
        del tok
        bar.update()

        bar.set_postfix_str("export")
        with tempfile.TemporaryDirectory(prefix="optimum-", dir=staging.parent) as work_dir:
            work = Path(work_dir)
            graph = _export_graph(family, source, work, fp16=dtype == "fp16", opset=opset, revision=revision,
                                  yes_no=yes_no, exporter=exporter, fused_attention=fused_attention,
                                  pad_token_id=pad_id)
            release_memory()  # the traced model is garbage now; validation must not stack on top of it
            bar.update()
            quantization = None
            if dtype in CPU_DTYPES:
                bar.set_postfix_str("quantize")
                from onnx_export.quantize import quantize

                quantization = quantize(family, dtype, graph, staging / MODEL_NAME)
                bar.update()
            else:
                _normalise_external_data(graph, staging)
        release_memory()

        files = {name: file_record(staging / name)
                 for name in (MODEL_NAME, EXTERNAL_DATA_NAME, TOKENIZER_NAME) if (staging / name).exists()}
        created_with = {
            **_versions(), "exporter": exporter,
            "attention": ("GroupQueryAttention" if fused_attention else "eager") if family == "v2" else "eager",
            "tokenizer": checkpoint_tokenizer.describe(),
        }
        if quantization:
            created_with["quantization"] = str(quantization)
        manifest = Manifest(
            family=family, dtype=dtype,  # type: ignore[arg-type]
            source={"model_id": source if not is_local else Path(source).name, "path": source if is_local
                    else None, "revision": revision, "architecture": (config.architectures or [None])[0],
                    "model_type": config.model_type, "hidden_size": config.hidden_size,
                    "num_hidden_layers": config.num_hidden_layers,
                    "max_position_embeddings": config.max_position_embeddings},
            opset=opset, max_length=int(length), pad_token_id=pad_id, padding_side="right", score=score,
            files=files, prompt=prompt, created_with=created_with,
            validation={"skipped": True, "passed": False} if not validate else {},
        )
        if validate:
            bar.set_postfix_str("validate")
            from dataclasses import replace

            from onnx_export.validate import fp32_tolerance_rule, run_validation

            outcome = run_validation(staging, manifest, source, revision=revision,
                                     checkpoint_tokenizer=checkpoint_tokenizer)
            # Where this mxbai_integrations' record has no typed place for them yet, one line each here.
            if getattr(outcome.record, "tokenizer_check", None) is None:
                created_with["tokenizer_check"] = outcome.tokenizer_check.summary()
            if dtype == "fp32" and getattr(outcome.record.tolerance, "relative_to_spread_unpadded", None) is None:
                created_with["fp32_tolerance"] = fp32_tolerance_rule(outcome.score_spread)
            manifest = replace(manifest, validation=outcome.record, created_with=created_with)
            bar.update()
        bar.set_postfix_str("write")
        write_manifest(staging, manifest)
        _apply_umask(staging)
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
