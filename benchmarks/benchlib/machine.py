"""The machine a figure was measured on, and the memory of the process that measured it.

Peak memory is the kernel's high-water mark of the measuring process itself (``VmHWM`` in
``/proc/self/status``), read in a fresh interpreter. ``resource.getrusage().ru_maxrss`` is never
used: Linux carries it over fork + exec, so a child started by a parent that had already loaded a
model would report the parent's peak. Linux only, like the benchmarks' figures.

Example:
    >>> from benchlib.machine import loadavg, peak_rss_bytes
    >>> len(loadavg()), peak_rss_bytes() > 0
    (3, True)
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# What the tables' "versions" row lists; a package that is not installed is left out.
PACKAGES = ("mxbai-integrations", "onnxruntime", "onnxruntime-gpu", "torch", "transformers",
            "sentence-transformers", "mxbai-rerank", "optimum", "optimum-onnx", "onnx", "tokenizers", "numpy")
# Every thread pool a child may start: BLAS/OpenMP (numpy, torch), and rayon (tokenizers).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS",
               "RAYON_RS_NUM_CPUS")


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded: printed next to every figure."""
    return [round(x, 2) for x in os.getloadavg()]


def loadavg_text() -> str:
    """``load average 1.07 1.25 1.72``: the line scripts print with their tables."""
    return "load average " + " ".join(f"{x:.2f}" for x in loadavg())


def proc_status(keys: Iterable[str] = ("VmRSS", "VmHWM", "RssAnon", "RssFile")) -> dict[str, int]:
    """The named ``/proc/self/status`` memory lines of this process, in bytes.

    Raises:
        RuntimeError: the file or a key is missing (not Linux), so no figure is made up.
    """
    wanted = set(keys)
    out: dict[str, int] = {}
    try:
        text = Path("/proc/self/status").read_text()
    except OSError as exc:
        raise RuntimeError(f"peak memory is read from /proc/self/status (Linux): {exc}") from exc
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[key] = int(value.split()[0]) * 1024
    missing = wanted - set(out)
    if missing:
        raise RuntimeError(f"/proc/self/status has no {sorted(missing)}")
    return out


def peak_rss_bytes() -> int:
    """VmHWM: the resident-set high-water mark of this process image (since exec or the last reset)."""
    return proc_status(("VmHWM",))["VmHWM"]


def rss_bytes() -> int:
    """VmRSS: resident memory now."""
    return proc_status(("VmRSS",))["VmRSS"]


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a later peak covers what follows only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class MemoryRecord:
    """A process's memory around one measured phase, in bytes.

    ``peak_rss`` covers the whole process (imports, model load, the timed calls);
    ``peak_rss_serving`` only the timed calls, and is None where the kernel refused the reset.
    """

    peak_rss: int
    peak_rss_load: int | None
    peak_rss_serving: int | None
    rss_end: int


class PeakMemory:
    """Split a process's VmHWM into the load peak and the serving peak.

    Example:
        >>> mem = PeakMemory()
        >>> mem.start_serving()  # after the model is loaded, before the timed calls
        >>> mem.record().peak_rss >= mem.record().rss_end
        True
    """

    def __init__(self) -> None:
        self.load: int | None = None
        self.reset = False

    def start_serving(self) -> None:
        self.load = peak_rss_bytes()
        self.reset = reset_peak_rss()

    def record(self) -> MemoryRecord:
        now, rss = peak_rss_bytes(), rss_bytes()
        if self.reset and self.load is not None:
            return MemoryRecord(peak_rss=max(now, self.load), peak_rss_load=self.load, peak_rss_serving=now,
                                rss_end=rss)
        return MemoryRecord(peak_rss=now, peak_rss_load=None, peak_rss_serving=None, rss_end=rss)


def thread_env(threads: int, base: Mapping[str, str] | None = None, *,
               tokenizers_parallelism: bool | None = None) -> dict[str, str]:
    """The environment of a child whose every thread pool is pinned to ``threads``, offline.

    ``tokenizers_parallelism`` None keeps the caller's setting (default "true", the library's own).
    """
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    if tokenizers_parallelism is None:
        env.setdefault("TOKENIZERS_PARALLELISM", "true")
    else:
        env["TOKENIZERS_PARALLELISM"] = "true" if tokenizers_parallelism else "false"
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_VERBOSITY"] = "error"
    return env


def versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Python's and each installed package's version (from its metadata, without importing it)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _cpuinfo_line(prefix: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) * 1024 / 2**30, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, object]:
    """CPU model, logical CPUs, RAM, the vector ISA extensions that matter to the kernels, the OS."""
    flags = f" {_cpuinfo_line('flags')} "
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile") if f" {f} " in flags]
    return {"cpu": _cpuinfo_line("model name") or platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(), "ram_gb": _ram_gb(), "isa": isa, "platform": platform.platform()}


def gpu_mem_of_pid(pid: int) -> int | None:
    """GPU memory nvidia-smi attributes to ``pid`` (bytes): what ORT's arena or torch's cache hold now."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            return int(float(parts[1])) * 1024 * 1024
    return None
