"""How results, manifests and validation records look on a terminal.

The records (``Manifest``, ``ValidationRecord``) hold the data; how ``info`` and ``validate`` lay
them out is the CLI's business, so the layout lives here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mxbai_integrations.artifact import Manifest
from mxbai_integrations.validation_record import ValidationRecord, format_stat

MIN_DOC_COLUMN = 20
LABEL_WIDTH = 14


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def field_line(label: str, text: str) -> str:
    """``label`` padded to the summary's column, then the text (``"checksums     sha256 ..."``)."""
    return f"{label:<{LABEL_WIDTH}}{text}"


def results_as_dicts(results: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"index": int(r.index), "score": float(r.score), "document": r.document} for r in results]


def format_table(rows: Sequence[dict[str, Any]], width: int) -> str:
    """An aligned rank/index/score/document table, documents cut to fit the terminal."""
    ranks = [str(i) for i in range(1, len(rows) + 1)]
    indexes = [str(r["index"]) for r in rows]
    scores = [f"{r['score']:.4f}" for r in rows]
    w_rank = max(len("rank"), *(len(s) for s in ranks))
    w_index = max(len("index"), *(len(s) for s in indexes))
    w_score = max(len("score"), *(len(s) for s in scores))
    room = max(width - (w_rank + w_index + w_score + 6), MIN_DOC_COLUMN)
    lines = [f"{'rank':>{w_rank}}  {'index':>{w_index}}  {'score':>{w_score}}  document"]
    for rank, index, score, row in zip(ranks, indexes, scores, rows, strict=True):
        doc = " ".join(str(row.get("document") or "").split())
        if len(doc) > room:
            doc = doc[: room - 1] + "…"
        lines.append(f"{rank:>{w_rank}}  {index:>{w_index}}  {score:>{w_score}}  {doc}".rstrip())
    return "\n".join(lines) + "\n"


def _recorded_not_judged(record: ValidationRecord) -> str:
    recorded = []
    if record.decided_by != "max_abs_diff":
        recorded.append(f"max abs diff {format_stat(record.max_abs_diff_unpadded, '.3g')} unpadded, "
                        f"{format_stat(record.max_abs_diff_padded, '.3g')} padded")
    if record.decided_by != "spearman_pooled":
        recorded.append(f"pooled Spearman {format_stat(record.spearman_pooled, '.4f')}")
    if record.decided_by != "spearman_min":
        recorded.append(f"per-case Spearman min {format_stat(record.spearman_min, '.4f')}")
    if record.decided_by != "max_abs_diff":
        recorded.append(f"top-1 agreement {format_stat(record.top1_agreement, '.0%')}")
    return ", ".join(recorded)


def _case_lines(record: ValidationRecord) -> list[str]:
    w = max(len("case"), *(len(c.case) for c in record.cases))
    lines = [f"  {'case':<{w}}  pairs  ids  max|diff| unpadded  padded    Spearman  top-1"]
    for c in record.cases:
        lines.append(
            f"  {c.case:<{w}}  {c.pairs:>5}  {'yes' if c.token_ids_equal else 'NO':>3}"
            f"  {format_stat(c.max_abs_diff_unpadded, '>18.3g')}  {format_stat(c.max_abs_diff_padded, '<8.3g')}  "
            f"{format_stat(c.spearman, '>8.4f')}  {'yes' if c.top1_agrees else 'NO':>5}"
            + (f"  non-finite: documents {c.non_finite}" if c.non_finite else "")
        )
    return lines


def validation_lines(record: ValidationRecord | None, *, cases: bool = True) -> list[str]:
    """The block ``info`` and ``validate`` print: the verdict with the statistic that decided it, then the drift.

    Examples:
        >>> print("\\n".join(validation_lines(read_manifest("out").validation, cases=False)))  # doctest: +SKIP
        validation    passed against sentence-transformers 5.1.2 CrossEncoder in fp32 at max_length 512
                      scored through MxbaiReranker (CPUExecutionProvider), 64 pairs
                      verdict by max abs diff 2.4e-07 unpadded (<= 0.0001), 3.6e-07 padded (<= 0.001), ...
    """
    label, pad = "validation    ", " " * LABEL_WIDTH
    if record is None:
        return [label + "none recorded"]
    if record.skipped:
        return [label + record.summary()]
    where = f" in {record.reference_dtype}"
    if record.max_length is not None:
        where += f" at max_length {record.max_length}"
    lines = [f"{label}{'passed' if record.passed else 'FAILED'} against {record.reference or '?'}{where}"]
    if record.scored_with:
        lines.append(f"{pad}scored through {record.scored_with}, {record.pairs} pairs")
    lines.append(f"{pad}verdict by {record.verdict_text()}")
    lines.append(f"{pad}recorded, not judged: {_recorded_not_judged(record)}")
    lines += [f"{pad}failed: {failure}" for failure in record.failures]
    if cases and record.cases:
        lines += _case_lines(record)
    return lines


def _score_text(manifest: Manifest) -> str:
    score = manifest.score
    if score.activation == "sigmoid":
        return "sigmoid(logit)"
    text = 'logit("1") - logit("0"), raw'
    if score.normalize_shift is not None:
        text += f"; --normalize: sigmoid(x - {score.normalize_shift:g})"
    return text


def manifest_lines(directory: Path, manifest: Manifest, *, checksums_verified: bool = False) -> list[str]:
    """``info``'s summary of an artifact: what it is, where it came from, how it scores, its files and record.

    ``checksums_verified`` adds the line that says the files' sha256 were checked (``info --checksums``).
    """
    source = manifest.source
    arch = source.architecture or source.model_type or "?"
    shape = ", ".join(part for part in (
        f"{source.num_hidden_layers} layers" if source.num_hidden_layers else "",
        f"hidden {source.hidden_size}" if source.hidden_size else "",
    ) if part)
    files = ", ".join(f"{name} {human_bytes(rec.bytes)}" for name, rec in manifest.files.items())
    lines = [
        field_line("artifact", f"{directory} (format {manifest.format_version})"),
        field_line("family", f"{manifest.family}  {arch}" + (f" ({shape})" if shape else "")),
        field_line("source", f"{source.model_id or '?'}" + (f" @ {source.revision}" if source.revision else "")
                   + (f"  [{source.path}]" if source.path else "")),
        field_line("dtype", f"{manifest.dtype}, opset {manifest.opset}"),
        field_line("max_length", str(manifest.max_length)),
        field_line("padding", f"{manifest.padding_side}, pad token id {manifest.pad_token_id}"),
        field_line("score", _score_text(manifest)),
    ]
    if manifest.prompt is not None:
        p = manifest.prompt
        lines.append(field_line("prompt", f"{p.predefined_length} template tokens, query budget "
                                f"{p.query_budget_num}/{p.query_budget_den} of max_length, "
                                f"{p.model_max_length} positions"))
    lines.append(field_line("files", files))
    if checksums_verified:
        size = sum(rec.bytes for rec in manifest.files.values())
        lines.append(field_line("checksums", f"sha256 of all {len(manifest.files)} files ({human_bytes(size)}) "
                                             "verified against the manifest"))
    if manifest.created_with:
        lines.append(field_line("created with", ", ".join(f"{k} {v}" for k, v in manifest.created_with.items())))
    return lines + validation_lines(manifest.validation)
