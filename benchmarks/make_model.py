"""Build a random-weight checkpoint with the shape of a real mxbai-rerank model, for benchmarks.

Random weights cost exactly what trained ones cost to run, and no hub access is needed; the shapes
come from tests/model_shapes.json (through ``benchlib.models``). ``--layers`` cuts depth for quick
CPU runs: every table made from such a checkpoint must say so, because speed-ups and memory ratios
depend on depth. ``tiny-v1``/``tiny-v2`` are the test suite's tiny models, for smoke runs.

    python benchmarks/make_model.py --shape xsmall-v1 --out benchmarks/out/models/xsmall-v1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchlib.machine import loadavg_text
from benchlib.models import ALL_SHAPES, SHAPES, build_checkpoint, config_name, family

__all__ = ["ALL_SHAPES", "SHAPES", "config_name", "default_out", "family", "is_built", "make_model"]

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_MODELS_DIR = BENCH_DIR / "out" / "models"
_STAMP = "benchmark_model.json"


def default_out(shape: str, layers: int | None, seed: int = 0) -> Path:
    """One directory per (shape, depth, seed), so full and cut-depth checkpoints never collide."""
    suffix = f"-L{layers}" if layers is not None else ""
    suffix += f"-s{seed}" if seed else ""
    return DEFAULT_MODELS_DIR / f"{shape}{suffix}"


def is_built(out: Path, shape: str, layers: int | None, seed: int) -> bool:
    """True when ``out`` holds a finished build of exactly this request (the stamp is written last)."""
    stamp = out / _STAMP
    if not stamp.is_file():
        return False
    try:
        data = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return data.get("shape") == shape and data.get("layers") == layers and data.get("seed") == seed


def make_model(shape: str, out: Path | None = None, *, layers: int | None = None, seed: int = 0,
               force: bool = False) -> Path:
    """Build (or reuse) the checkpoint and return its directory.

    Example:
        >>> make_model("tiny-v1", Path("/tmp/tiny-v1"))  # doctest: +SKIP
        PosixPath('/tmp/tiny-v1')
    """
    if shape not in ALL_SHAPES:
        raise ValueError(f"shape must be one of {ALL_SHAPES}, got {shape!r}")
    if layers is not None and layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    out = Path(out) if out is not None else default_out(shape, layers, seed)
    if not force and is_built(out, shape, layers, seed):
        return out
    stamp = out / _STAMP
    if stamp.exists():
        stamp.unlink()
    build_checkpoint(shape, out, layers=layers, seed=seed)
    config = json.loads((out / "config.json").read_text())
    stamp.write_text(json.dumps({
        "shape": shape, "layers": layers, "seed": seed,
        "config_name": config_name(shape) if shape in SHAPES else shape,
        "num_hidden_layers": config["num_hidden_layers"], "hidden_size": config["hidden_size"],
        "note": ("random weights; real architecture and sizes" if shape in SHAPES
                 else "random weights; the test suite's tiny shape") + (f", depth cut to {layers}" if layers else ""),
    }, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", required=True, choices=ALL_SHAPES)
    parser.add_argument("--layers", type=int, default=None, help="cut the depth (default: the real depth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/out/models/SHAPE[-LN]")
    parser.add_argument("--force", action="store_true", help="rebuild even if OUT holds this build")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = make_model(args.shape, args.out, layers=args.layers, seed=args.seed, force=args.force)
    print(f"{args.shape}{f' (layers={args.layers})' if args.layers else ''}: {out} "
          f"[{time.perf_counter() - t0:.1f}s, {loadavg_text()}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
