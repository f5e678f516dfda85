"""EvalReport: what an evaluation measured, as one record with its own table, JSON, TREC runs and plot.

The record crosses boundaries (the CLI's ``--json``, a notebook, a CI artifact compared across
releases), so it is a dataclass that round-trips through JSON, not a dict read by string keys.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mxbai_integrations.errors import ArgumentError, MissingExtraError
from mxbai_integrations.eval.metrics import display_name, value_range

FORMAT_VERSION = 1
_TEST_NAMES = {"student": "paired Student's t-test", "fisher": "Fisher's randomization test",
               "tukey": "Tukey's HSD test"}


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def safe_name(name: str) -> str:
    """A run name usable as a file name and as the one-word tag column of a TREC run."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


@dataclass
class ModelInfo:
    """Which artifact produced a reranked run, and where it ran."""

    path: str
    model_id: str
    family: str
    dtype: str
    providers: list[str]
    instruction: str | None = None


@dataclass
class RunResult:
    """One ranking of the candidates (the first stage, or one reranker) and how well it did.

    Attributes:
        name: the run's name, unique in the report.
        kind: "first_stage" or "reranker".
        metrics: metric -> mean over the evaluated queries (ranx).
        ci95: metric -> half-width of the 95% confidence interval of that mean.
        per_query: metric -> values in ``EvalReport.query_ids`` order.
        p_values: other run -> metric -> p-value of the paired test (None where both runs are equal on every
            query: the test is undefined).
        better_than: metric -> the runs this one beats significantly (p < max_p and a higher mean).
        seconds: time spent ranking (reranker: scoring calls only; BM25: retrieval), None when unknown.
        queries: queries that had candidates to rank.
        pairs: (query, document) pairs scored.
        model: the artifact, for a reranker.
        run: query id -> {document id: score}; written by ``save_runs``, left out of JSON unless asked for.
    """

    name: str
    kind: str
    metrics: dict[str, float]
    ci95: dict[str, float]
    per_query: dict[str, list[float]]
    p_values: dict[str, dict[str, float | None]] = field(default_factory=dict)
    better_than: dict[str, list[str]] = field(default_factory=dict)
    seconds: float | None = None
    queries: int = 0
    pairs: int = 0
    model: ModelInfo | None = None
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def queries_per_s(self) -> float | None:
        return self.queries / self.seconds if self.seconds else None

    @property
    def docs_per_s(self) -> float | None:
        return self.pairs / self.seconds if self.seconds and self.kind == "reranker" else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        model = data.get("model")
        return cls(
            name=data["name"], kind=data["kind"],
            metrics={k: float(v) for k, v in data["metrics"].items()},
            ci95={k: float(v) for k, v in data["ci95"].items()},
            per_query={k: [float(x) for x in v] for k, v in data["per_query"].items()},
            p_values={o: {m: _optional(p) for m, p in ps.items()} for o, ps in data.get("p_values", {}).items()},
            better_than={k: list(v) for k, v in data.get("better_than", {}).items()},
            seconds=data.get("seconds"), queries=int(data.get("queries", 0)), pairs=int(data.get("pairs", 0)),
            model=ModelInfo(**model) if model else None,
            run={q: {d: float(s) for d, s in docs.items()} for q, docs in data.get("run", {}).items()},
        )


@dataclass
class Agreement:
    """How alike two rerankers order the same candidates, averaged over queries (e.g. int8 against fp32).

    ``spearman`` is None when no query had two or more candidates with distinct scores from both.
    """

    a: str
    b: str
    spearman: float | None
    top10_overlap: float | None
    queries: int


@dataclass
class DatasetSummary:
    """What was evaluated, and what of the input was skipped or dropped (and why the counts matter)."""

    data_dir: str
    split: str
    first_stage: str
    depth: int
    corpus_documents: int
    queries: int
    queries_without_qrels: int = 0
    qrels_unknown_documents: int = 0
    qrels_unknown_queries: int = 0
    run_unknown_documents: int = 0
    queries_without_candidates: int = 0
    limit_queries: int | None = None


def error_bars(result: RunResult, metrics: list[str]) -> tuple[list[float], list[float]]:
    """The 95% interval around each mean as (below, above), cut at the values the metric can take.

    The t interval is symmetric and knows nothing of bounds: NDCG 0.95 +- 0.12 would draw a bar up to
    1.07, a value no ranking can reach. The bar stops at the bound instead (0 below; 1 above for
    NDCG, MRR, MAP, recall and the other normalised metrics); ``ci95`` keeps the half-width as computed.
    """
    below, above = [], []
    for metric in metrics:
        mean, half = result.metrics[metric], result.ci95[metric]
        low, high = value_range(metric)
        below.append(max(0.0, min(half, mean - low)))
        above.append(half if high is None else max(0.0, min(half, high - mean)))
    return below, above


@dataclass
class EvalReport:
    """The result of :func:`mxbai_integrations.eval.evaluate`: first stage and rerankers, side by side.

    Examples:
        >>> report = evaluate(["./base-v2-fp32", "./base-v2-int8"], "my-data")  # doctest: +SKIP
        >>> report.run("base-v2-int8").metrics["ndcg@10"]  # doctest: +SKIP
        0.6612
        >>> EvalReport.from_json(report.to_json(include_runs=True)) == report  # doctest: +SKIP
        True
    """

    data: DatasetSummary
    metrics: list[str]
    stat_test: str
    max_p: float
    query_ids: list[str]
    runs: list[RunResult]
    agreement: list[Agreement] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    # -- access ---------------------------------------------------------------------------------
    def run(self, name: str) -> RunResult:
        """The run called ``name`` (a model's name is its artifact directory's name unless given)."""
        for result in self.runs:
            if result.name == name:
                return result
        raise KeyError(f"no run named {name!r}; runs: {', '.join(r.name for r in self.runs)}")

    @property
    def first_stage(self) -> RunResult:
        return self.runs[0]

    @property
    def rerankers(self) -> list[RunResult]:
        return [r for r in self.runs if r.kind == "reranker"]

    # -- JSON -----------------------------------------------------------------------------------
    def to_dict(self, *, include_runs: bool = False) -> dict[str, Any]:
        """Plain data for JSON; ``include_runs`` adds every run's scored candidates (large)."""
        data = asdict(self)
        if not include_runs:
            for run in data["runs"]:
                run.pop("run")
        return data

    def to_json(self, *, include_runs: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(include_runs=include_runs), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ArgumentError(f"report format_version {version!r} is not the one this version reads "
                                f"({FORMAT_VERSION})")
        return cls(
            data=DatasetSummary(**data["data"]), metrics=list(data["metrics"]), stat_test=data["stat_test"],
            max_p=float(data["max_p"]), query_ids=list(data["query_ids"]),
            runs=[RunResult.from_dict(r) for r in data["runs"]],
            agreement=[Agreement(a=x["a"], b=x["b"], spearman=_optional(x["spearman"]),
                                 top10_overlap=_optional(x["top10_overlap"]), queries=int(x["queries"]))
                       for x in data.get("agreement", [])],
            format_version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> EvalReport:
        return cls.from_dict(json.loads(text))

    # -- outputs --------------------------------------------------------------------------------
    def format_table(self) -> str:
        """The terminal summary: data, one row per run, significance letters, agreement, what was skipped."""
        d = self.data
        lines = [
            f"data          {d.data_dir} (split {d.split}): {d.queries} queries, {d.corpus_documents} documents",
            f"first stage   {d.first_stage}, top {d.depth} reranked per query",
        ]
        letters = {r.name: chr(ord("a") + i) if i < 26 else f"r{i}" for i, r in enumerate(self.runs)}
        headers = ["", "run", *(display_name(m) for m in self.metrics), "queries/s", "docs/s"]
        rows = []
        for r in self.runs:
            cells = [letters[r.name], r.name]
            for m in self.metrics:
                marks = "".join(letters[o] for o in r.better_than.get(m, []))
                cells.append(f"{r.metrics[m]:.4f}" + (f" {marks}" if marks else ""))
            cells.append(f"{r.queries_per_s:.1f}" if r.queries_per_s else "-")
            cells.append(f"{r.docs_per_s:.1f}" if r.docs_per_s else "-")
            rows.append(cells)
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
        right = [False, False, *([False] * len(self.metrics)), True, True]

        def fmt(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True))

        lines += ["", fmt(headers).rstrip(), *(fmt(row).rstrip() for row in rows)]
        test = _TEST_NAMES.get(self.stat_test, self.stat_test)
        lines.append(f"a letter after a score: significantly better than that run ({test}, p < {self.max_p:g})")
        if self.agreement:
            lines += ["", "agreement between rerankers (same candidates, mean over queries)"]
            width = max(len(f"{x.a} vs {x.b}") for x in self.agreement)
            for x in self.agreement:
                rho = "    n/a" if x.spearman is None else f"{x.spearman:7.4f}"
                overlap = "n/a" if x.top10_overlap is None else f"{x.top10_overlap:.3f}"
                lines.append(f"  {f'{x.a} vs {x.b}':<{width}}  Spearman {rho}  top-10 overlap {overlap}")
        notes = []
        if d.limit_queries is not None:
            notes.append(f"limited to the first {d.limit_queries} queries with qrels")
        counts = [
            (d.queries_without_qrels, f"queries of queries.jsonl without a relevant document in the {d.split} qrels "
                                      "(skipped)"),
            (d.qrels_unknown_documents, "qrels lines naming documents not in the corpus (dropped)"),
            (d.qrels_unknown_queries, "qrels queries not in queries.jsonl (dropped)"),
            (d.run_unknown_documents, "run lines naming documents not in the corpus (dropped)"),
            (d.queries_without_candidates, "queries without first-stage candidates (scored 0)"),
        ]
        notes += [f"{what}: {n}" for n, what in counts if n]
        if notes:
            lines += ["", *(f"note: {n}" for n in notes)]
        return "\n".join(lines) + "\n"

    def save_runs(self, directory: str | os.PathLike[str]) -> list[Path]:
        """One TREC run file per run (``<name>.trec``: ``qid Q0 docid rank score name``), for trec_eval or ranx.

        Needs the scored candidates: a report read from JSON has them only if it was written with
        ``include_runs=True``.
        """
        out = Path(directory).expanduser()
        if out.exists() and not out.is_dir():
            raise ArgumentError(f"save_runs: {str(out)!r} exists and is not a directory")
        if any(not r.run for r in self.runs):
            raise ArgumentError("save_runs: this report holds no scored candidates (read from JSON written "
                             "without include_runs=True)")
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for result in self.runs:
            tag = safe_name(result.name)
            path = out / f"{tag}.trec"
            with path.open("w", encoding="utf-8") as handle:
                for query_id, docs in result.run.items():
                    ranked = sorted(docs.items(), key=lambda item: -item[1])
                    for rank, (doc_id, score) in enumerate(ranked, 1):
                        handle.write(f"{query_id} Q0 {doc_id} {rank} {score!r} {tag}\n")
            paths.append(path)
        return paths

    def plot(self, path: str | os.PathLike[str] | None = None, *, metrics: list[str] | None = None) -> Any:
        """Grouped bars: each metric for each run, with 95% confidence intervals as error bars.

        Drawn on a bare ``matplotlib.figure.Figure`` (Agg canvas), so no GUI backend or pyplot state
        is touched; saved to ``path`` when given (format from the suffix). Returns the Figure.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise MissingExtraError('EvalReport.plot needs matplotlib: pip install "mxbai-integrations[eval]"') from exc
        metrics = list(metrics or self.metrics)
        unknown = [m for m in metrics if m not in self.metrics]
        if unknown:
            raise ArgumentError(f"metrics: {unknown} not in this report ({self.metrics})")
        width_in = min(12.0, 3.0 + 0.45 * len(metrics) * len(self.runs))
        fig = Figure(figsize=(max(6.0, width_in), 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        width = 0.8 / len(self.runs)
        top = 1.0
        for i, result in enumerate(self.runs):
            xs = [j + (i - (len(self.runs) - 1) / 2) * width for j in range(len(metrics))]
            means = [result.metrics[m] for m in metrics]
            below, above = error_bars(result, metrics)
            ax.bar(xs, means, width, yerr=[below, above], capsize=3, label=result.name)
            top = max(top, *(m + a for m, a in zip(means, above, strict=True)))
        ax.set_xticks(range(len(metrics)), [display_name(m) for m in metrics])
        ax.set_ylim(0, top * 1.05)
        ax.set_ylabel("score (95% CI)")
        ax.set_title(f"{Path(self.data.data_dir).name} ({self.data.split}, {self.data.queries} queries): "
                     f"{self.data.first_stage} top {self.data.depth} reranked", fontsize=10)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", alpha=0.3)
        if path is not None:
            fig.savefig(Path(path).expanduser(), dpi=120)
        return fig
