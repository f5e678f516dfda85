"""Each measurement in a fresh interpreter, so its peak memory (VmHWM) and its imports are its own.

A script registers its child functions by name and re-runs itself with ``--child SPEC.json``;
the spec (plain JSON) goes in a file, the child's result (plain JSON) comes back in another, and
stdout/stderr stay free for logs. An ONNX child therefore never has torch in its address space,
and a reference child's model never counts against an ONNX row.

Example (in a script)::

    CHILDREN = {"onnx": child_onnx}
    if args.child:
        return child_main(CHILDREN, args.child)
    result = run_child(Path(__file__), "onnx", {"artifact": ...}, threads=2, tmp=tmp)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.machine import thread_env

ChildFn = Callable[[dict[str, Any]], dict[str, Any]]


class ChildError(RuntimeError):
    """A child process failed; the message carries the tail of its output."""


def run_child(script: Path, kind: str, spec: Mapping[str, Any], *, threads: int, tmp: Path | None = None,
              timeout: float | None = None, tokenizers_parallelism: bool | None = None) -> dict[str, Any]:
    """Run ``script --child SPEC`` in a fresh interpreter with every thread pool pinned to ``threads``.

    The spec gets ``kind`` and ``result_path`` added; the child's ``child_main`` writes the result there.

    Raises:
        ChildError: the child exited non-zero or wrote no result.
    """
    with tempfile.TemporaryDirectory(prefix=f"{kind}-", dir=tmp) as work:
        spec_path, result_path = Path(work) / "spec.json", Path(work) / "result.json"
        spec_path.write_text(json.dumps({**spec, "kind": kind, "result_path": str(result_path)}))
        env = thread_env(threads, tokenizers_parallelism=tokenizers_parallelism)
        proc = subprocess.run([sys.executable, str(Path(script).resolve()), "--child", str(spec_path)], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not result_path.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
            raise ChildError(f"{kind} child failed (exit {proc.returncode}):\n{tail}")
        return json.loads(result_path.read_text())


def child_main(children: Mapping[str, ChildFn], spec_path: str | Path) -> int:
    """The child side of ``run_child``: run the registered function the spec names, write its result."""
    import warnings

    warnings.filterwarnings("ignore")
    spec = json.loads(Path(spec_path).read_text())
    result = children[spec["kind"]](spec)
    Path(spec["result_path"]).write_text(json.dumps(result))
    return 0


@dataclass(frozen=True)
class WatchedRun:
    """How a watched child ended: ``status`` is "ok", "> N GB (stopped)", "> N s (stopped)" or "failed (...)"."""

    status: str
    returncode: int | None
    watched_peak_bytes: int


def _rss_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def run_watched(cmd: Sequence[str], *, env: Mapping[str, str], mem_limit_gb: float, timeout: float,
                poll_s: float = 0.2) -> WatchedRun:
    """Run ``cmd``, killing it above ``mem_limit_gb`` of RSS or past ``timeout`` seconds.

    A reference that cannot fit then costs one row ("> 14 GB (stopped)"), not the machine. The
    figure a table reports is still the child's own VmHWM; the sampled peak here only guards.
    stderr goes to a file, so a talkative child cannot fill a pipe and stall.
    """
    with tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(list(cmd), env=dict(env), stdout=subprocess.DEVNULL, stderr=err_file)
        start, peak, limit = time.monotonic(), 0, mem_limit_gb * 1024**3
        status = "ok"
        try:
            while proc.poll() is None:
                peak = max(peak, _rss_of(proc.pid) or 0)
                if peak > limit:
                    status = f"> {mem_limit_gb:g} GB (stopped)"
                    break
                if time.monotonic() - start > timeout:
                    status = f"> {timeout:.0f} s (stopped)"
                    break
                time.sleep(poll_s)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if status == "ok" and proc.returncode != 0:
            err_file.seek(0)
            lines = err_file.read().decode(errors="replace").strip().splitlines()
            status = f"failed ({lines[-1][:80] if lines else proc.returncode})"
        return WatchedRun(status, proc.returncode, peak)
