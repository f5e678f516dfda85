"""Float-order noise of fp32 exports against the torch reference, per released model shape, at full depth.

For each shape: a random-weight checkpoint of the real architecture and sizes (``make_model``, reused
when its stamp says it is built), exported to fp32 with validation on (``onnx_export.export_model``),
in a fresh child process per step so each shape's memory is its own and freed before the next. The
figures are the export validation's own: the reference library's scores against the artifact's,
the largest absolute difference unpadded (each document alone) and padded (one batch), and the
limits the fp32 verdict applied, ``max(1e-4, 1e-4 x spread)`` unpadded and ``max(1e-3, 1e-3 x
spread)`` padded, where spread = max - min of the reference's unpadded scores (``fp32_tolerances``).
The spread is taken from the validation itself (``Validation.score_spread``), the rest from the
validation record the export wrote into the artifact's manifest.

``noise/spread`` is the unpadded max abs diff over the spread (the relative tolerance is 1e-4);
``margin`` is the unpadded limit over the unpadded noise (how many times the noise would have to grow
before the verdict fails). ``--layers`` cuts depth, for smoke runs only: every row says so.

    flock /tmp/mxbai-heavy.lock python benchmarks/tolerance_noise.py --shapes xsmall-v1,base-v1,base-v2,large-v1

Prints a markdown table with the load average of each row, and writes everything (versions, machine,
every case of each validation record) to ``--json`` (default benchmarks/results/tolerance-noise.json).
Artifacts are deleted after each shape, and the checkpoints this run built when they exceed
``--keep-checkpoint-mb``, unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib.children import ChildError, child_main, run_child
from benchlib.machine import loadavg, loadavg_text, machine_info, peak_rss_bytes, versions
from benchlib.models import ALL_SHAPES, model_shape
from benchlib.results import markdown_table, write_json
from make_model import default_out, is_built

BENCH_DIR = Path(__file__).resolve().parent
SCRIPT = Path(__file__).resolve()
DEFAULT_SHAPES = "xsmall-v1,base-v1,large-v1,base-v2"
DEFAULT_OUT = BENCH_DIR / "out" / "tolerance-noise"
DEFAULT_JSON = BENCH_DIR / "results" / "tolerance-noise.json"
MiB = 2**20
# Measured before this script existed (same method), kept beside the new rows for comparison.
EARLIER = [{"shape": "large-v2", "layers": 28, "hidden_size": 1536, "score_spread": 32.0,
            "max_abs_diff_unpadded": 9.35e-05, "max_abs_diff_padded": 1.05e-04,
            "note": "measured earlier, not by this script"}]


def _log(msg: str) -> None:
    print(f"[tolerance_noise {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Children (fresh interpreters: torch is imported there, never in the parent)
# ------------------------------------------------------------------------------------------------
def child_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Build (or reuse) the checkpoint through make_model; its stamp decides reuse."""
    from make_model import make_model

    t0 = time.perf_counter()
    out = make_model(spec["shape"], Path(spec["checkpoint"]), layers=spec["layers"], seed=spec["seed"])
    return {"path": str(out), "build_s": time.perf_counter() - t0, "peak_rss": peak_rss_bytes()}


def child_export(spec: dict[str, Any]) -> dict[str, Any]:
    """fp32 export with validation on; the validation's own spread is caught on its way to the manifest."""
    import onnx_export.validate as validate_mod
    from mxbai_integrations.artifact import read_manifest
    from mxbai_integrations.errors import ExportError
    from onnx_export import export_model

    caught: dict[str, Any] = {}
    run_validation = validate_mod.run_validation

    def spying_run_validation(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        outcome = run_validation(*args, **kwargs)
        caught["validate_s"] = time.perf_counter() - t0
        caught["score_spread"] = float(outcome.score_spread)
        return outcome

    # The exporter imports run_validation from the module when it validates, so it gets this one.
    validate_mod.run_validation = spying_run_validation
    error = None
    t0 = time.perf_counter()
    try:
        export_model(spec["checkpoint"], spec["artifact"], dtype="fp32", validate=True, force=True, progress=False)
    except ExportError as exc:  # the artifact is written, marked invalid: its record says why
        error = str(exc)
    export_s = time.perf_counter() - t0
    manifest = read_manifest(spec["artifact"])
    record = manifest.validation
    return {
        "export_s": export_s, "peak_rss": peak_rss_bytes(), "error": error, **caught,
        "validation": record.to_dict() if record is not None else None,
        "summary": record.summary() if record is not None else None,
        "created_with": dict(manifest.created_with),
        "artifact_bytes": sum(p.stat().st_size for p in Path(spec["artifact"]).iterdir() if p.is_file()),
    }


CHILDREN = {"build": child_build, "export": child_export}


# ------------------------------------------------------------------------------------------------
# One shape
# ------------------------------------------------------------------------------------------------
def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _spread_from_rule(created_with: dict[str, str]) -> float | None:
    """The spread as the manifest's rule line states it (3 significant digits), if the child caught none."""
    m = re.search(r"; ([-+0-9.eE]+) = spread", created_with.get("fp32_tolerance", ""))
    return float(m.group(1)) if m else None


def _remaining(deadline: dt.datetime | None) -> float | None:
    if deadline is None:
        return None
    return (deadline - dt.datetime.now(dt.timezone.utc)).total_seconds()


def measure(shape: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build, export with validation, read the record, clean up; one row of the table."""
    cfg = model_shape(shape)
    layers = args.layers if args.layers is not None else int(cfg["num_hidden_layers"])
    checkpoint = default_out(shape, args.layers, args.seed)
    artifact = args.out / "artifacts" / f"{checkpoint.name}-fp32"
    row: dict[str, Any] = {
        "shape": shape, "layers": layers, "full_depth": int(cfg["num_hidden_layers"]),
        "depth_cut": args.layers is not None, "hidden_size": int(cfg["hidden_size"]), "seed": args.seed,
        "checkpoint": str(checkpoint), "artifact": str(artifact), "loadavg_start": loadavg(),
        "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    reused = is_built(checkpoint, shape, args.layers, args.seed)
    row["checkpoint_reused"] = reused
    _log(f"{shape}: checkpoint {'reused' if reused else 'building'} at {checkpoint} ({loadavg_text()})")
    build = run_child(SCRIPT, "build", {"shape": shape, "checkpoint": str(checkpoint), "layers": args.layers,
                                        "seed": args.seed}, threads=args.threads, timeout=_remaining(args.deadline))
    row.update(build_s=build["build_s"], build_peak_rss=build["peak_rss"], checkpoint_bytes=_dir_bytes(checkpoint))

    _log(f"{shape}: exporting fp32 with validation to {artifact} ({loadavg_text()})")
    artifact.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = run_child(SCRIPT, "export", {"checkpoint": str(checkpoint), "artifact": str(artifact)},
                         threads=args.threads, tmp=args.out, timeout=_remaining(args.deadline))
    finally:
        row["loadavg"] = loadavg()
        row["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        _cleanup(row, checkpoint, artifact, reused, args)
    record = done["validation"] or {}
    tol = record.get("tolerance") or {}
    spread = done.get("score_spread")
    row.update(
        export_s=done["export_s"], validate_s=done.get("validate_s"), export_peak_rss=done["peak_rss"],
        artifact_bytes=done["artifact_bytes"], export_error=done["error"],
        reference=record.get("reference"), scored_with=record.get("scored_with"), pairs=record.get("pairs"),
        score_spread=spread if spread is not None else _spread_from_rule(done["created_with"]),
        score_spread_source="Validation.score_spread" if spread is not None else "manifest rule line (3 digits)",
        max_abs_diff_unpadded=record.get("max_abs_diff_unpadded"),
        max_abs_diff_padded=record.get("max_abs_diff_padded"),
        limit_unpadded=tol.get("max_abs_diff_unpadded"), limit_padded=tol.get("max_abs_diff_padded"),
        top1_agreement=record.get("top1_agreement"), token_ids_equal=record.get("token_ids_equal"),
        passed=record.get("passed"), failures=record.get("failures"), summary=done["summary"],
        fp32_tolerance_rule=done["created_with"].get("fp32_tolerance"), cases=record.get("cases"),
    )
    row.update(_derived(row))
    return row


def _cleanup(row: dict[str, Any], checkpoint: Path, artifact: Path, reused: bool, args: argparse.Namespace) -> None:
    """Delete the artifact, and a checkpoint this run built above --keep-checkpoint-mb, unless --keep."""
    row["deleted"] = []
    if args.keep:
        return
    if artifact.exists():
        shutil.rmtree(artifact, ignore_errors=True)
        row["deleted"].append(str(artifact))
    if (not reused and checkpoint.exists()
            and _dir_bytes(checkpoint) > args.keep_checkpoint_mb * MiB):
        shutil.rmtree(checkpoint, ignore_errors=True)
        row["deleted"].append(str(checkpoint))


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return None
    return float(a) / float(b)


def _worst(cases: list[dict[str, Any]] | None, key: str) -> str | None:
    finite = [c for c in cases or [] if c.get(key) is not None]
    return max(finite, key=lambda c: c[key])["case"] if finite else None


def _derived(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "worst_case_unpadded": _worst(row["cases"], "max_abs_diff_unpadded"),
        "worst_case_padded": _worst(row["cases"], "max_abs_diff_padded"),
        "noise_over_spread": _ratio(row["max_abs_diff_unpadded"], row["score_spread"]),
        "margin_unpadded": _ratio(row["limit_unpadded"], row["max_abs_diff_unpadded"]),
        "margin_padded": _ratio(row["limit_padded"], row["max_abs_diff_padded"]),
    }


# ------------------------------------------------------------------------------------------------
# Table
# ------------------------------------------------------------------------------------------------
HEADER = ["shape", "layers", "hidden", "reference", "score spread", "max abs diff unpadded", "padded",
          "noise/spread", "limit unpadded", "margin (limit / noise)", "verdict", "export s", "load average"]


def _g(x: Any, spec: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _times(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}x" if x < 10 else f"{x:,.0f}x"


def _reference_short(reference: str | None) -> str:
    """The library and class (``sentence-transformers 5.1.0 CrossEncoder``), without the notes after ';'."""
    return (reference or "-").split(";")[0].split(" on transformers")[0]


def table_row(row: dict[str, Any]) -> list[str]:
    if row.get("status") not in (None, "ok"):
        return [row["shape"], str(row.get("layers", "-")), str(row.get("hidden_size", "-")), "-", "-", "-", "-", "-",
                "-", "-", row["status"], "-", " ".join(f"{x:.2f}" for x in row.get("loadavg") or [])]
    layers = f"{row['layers']} of {row['full_depth']}" if row["depth_cut"] else str(row["layers"])
    verdict = "passed" if row["passed"] else "FAILED: " + "; ".join(row.get("failures") or [])
    return [row["shape"], layers, str(row["hidden_size"]), _reference_short(row["reference"]),
            _g(row["score_spread"], ".4g"), _g(row["max_abs_diff_unpadded"]), _g(row["max_abs_diff_padded"]),
            _g(row["noise_over_spread"]), _g(row["limit_unpadded"], "g"), _times(row["margin_unpadded"]),
            verdict, f"{row['export_s']:.0f}", " ".join(f"{x:.2f}" for x in row["loadavg"])]


def render(rows: list[dict[str, Any]]) -> str:
    return markdown_table(HEADER, [table_row(r) for r in rows], align="l:r:r:l:r:r:r:r:r:r:l:r:l")


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def _deadline(text: str | None) -> dt.datetime | None:
    """``HH:MM`` (today, UTC) or an ISO time; the children are killed when it passes."""
    if not text:
        return None
    now = dt.datetime.now(dt.timezone.utc)
    if re.fullmatch(r"\d{1,2}:\d{2}", text):
        hh, mm = map(int, text.split(":"))
        return now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    when = dt.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"comma list of {', '.join(ALL_SHAPES)}")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work directory (artifacts, a copy of the JSON)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the results go")
    p.add_argument("--layers", type=int, default=None, help="cut depth: smoke runs only (every row says so)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the artifacts and the checkpoints")
    p.add_argument("--keep-checkpoint-mb", type=float, default=1024,
                   help="without --keep, delete a checkpoint this run built when it is larger than this")
    p.add_argument("--deadline", default=None, help="UTC HH:MM or ISO time: stop (kill the child) when it passes")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is None:
        args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
        unknown = [s for s in args.shapes if s not in ALL_SHAPES]
        if unknown:
            p.error(f"unknown shapes {unknown}; choose from {ALL_SHAPES}")
        if args.layers is not None and args.layers < 1:
            p.error("--layers must be >= 1")
        args.deadline = _deadline(args.deadline)
        args.out = args.out.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(CHILDREN, args.child)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "about": (__doc__ or "").split("\n\n")[0], "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "depth": f"cut to {args.layers} layers (smoke run)" if args.layers else "full depth",
        "seed": args.seed, "threads": args.threads, "versions": versions(), "machine": machine_info(),
        "git_commit": _git_commit(), "rows": [], "earlier": EARLIER,
        "checkpoints": "built by make_model (random weights, real sizes; v1 with the 128,100-row embedding table)",
    }
    failed = False
    for shape in args.shapes:
        left = _remaining(args.deadline)
        if left is not None and left <= 0:
            _log(f"{shape}: skipped, the deadline has passed")
            result["rows"].append({"shape": shape, "status": "skipped (deadline)", "loadavg": loadavg()})
            continue
        try:
            row = {**measure(shape, args), "status": "ok"}
        except subprocess.TimeoutExpired:
            failed = True
            row = {"shape": shape, "status": "stopped at the deadline", "loadavg": loadavg()}
        except ChildError as exc:
            failed = True
            row = {"shape": shape, "status": "failed", "error": str(exc), "loadavg": loadavg()}
            _log(f"{shape}: {exc}")
        result["rows"].append(row)
        _log(f"{shape}: {row.get('summary') or row['status']} ({loadavg_text()})")
        # After every shape, so a stopped run keeps what finished.
        write_json(args.json, result)
        write_json(args.out / "tolerance-noise.json", result)
    table = render(result["rows"])
    result["table"] = table
    write_json(args.json, result)
    write_json(args.out / "tolerance-noise.json", result)
    print(f"fp32 export validation noise ({result['depth']}, random weights, seed {args.seed}, "
          f"{args.threads} threads)\n")
    print(table)
    for e in EARLIER:
        print(f"\nearlier ({e['note']}): {e['shape']} {e['layers']} layers, hidden {e['hidden_size']}: spread "
              f"{e['score_spread']:g}, max abs diff {e['max_abs_diff_unpadded']:.3g} unpadded, "
              f"{e['max_abs_diff_padded']:.3g} padded")
    print(f"\n{loadavg_text()}; results in {args.json}")
    return 1 if failed else 0


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=BENCH_DIR,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    raise SystemExit(main())
