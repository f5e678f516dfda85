"""Build a random-weight checkpoint with the shape of a real mxbai-rerank model, for benchmarks.

Random weights cost exactly what trained ones cost to run, and no hub access is needed; the shapes
come from tests/model_shapes.json. ``--layers`` cuts depth for quick CPU runs: every table made
from such a checkpoint must say so, because speed-ups and memory ratios depend on depth.

    python benchmarks/make_model.py --shape xsmall-v1 --out benchmarks/out/models/xsmall-v1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SHAPES = ("xsmall-v1", "base-v1", "large-v1", "base-v2", "large-v2")
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_MODELS_DIR = BENCH_DIR / "out" / "models"
_STAMP = "benchmark_model.json"


def config_name(shape: str) -> str:
    """The key in model-configs.json for a short shape name (``base-v2`` -> ``mxbai-rerank-base-v2``)."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    return f"mxbai-rerank-{shape}"


def family(shape: str) -> str:
    return "v1" if shape.endswith("-v1") else "v2"


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
    """Build (or reuse) the checkpoint and return its directory."""
    if layers is not None and layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    out = Path(out) if out is not None else default_out(shape, layers, seed)
    if not force and is_built(out, shape, layers, seed):
        return out
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from random_models import build_shape

    stamp = out / _STAMP
    if stamp.exists():
        stamp.unlink()
    build_shape(config_name(shape), out, layers=layers, seed=seed)
    config = json.loads((out / "config.json").read_text())
    stamp.write_text(json.dumps({
        "shape": shape, "layers": layers, "seed": seed, "config_name": config_name(shape),
        "num_hidden_layers": config["num_hidden_layers"], "hidden_size": config["hidden_size"],
        "note": "random weights; real architecture and sizes" + (f", depth cut to {layers}" if layers else ""),
    }, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", required=True, choices=SHAPES)
    parser.add_argument("--layers", type=int, default=None, help="cut the depth (default: the real depth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/out/models/SHAPE[-LN]")
    parser.add_argument("--force", action="store_true", help="rebuild even if OUT holds this build")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = make_model(args.shape, args.out, layers=args.layers, seed=args.seed, force=args.force)
    print(f"{args.shape}{f' (layers={args.layers})' if args.layers else ''}: {out} "
          f"[{time.perf_counter() - t0:.1f}s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
