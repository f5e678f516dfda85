"""``mxbai_integrations.eval`` and ``mxbai-onnx eval`` on a small BEIR directory the tests write themselves.

The metric values are checked against pytrec_eval (trec_eval's own code), run on the very rankings
the report holds and on the TREC files it writes, and against hand-computed cases; never only
against ranx, which computes them. ranx compiles its metrics with numba on first use, so every
evaluation here runs in this one process.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ranx")
pytest.importorskip("bm25s")
pytrec_eval = pytest.importorskip("pytrec_eval")

from mxbai_integrations import ArgumentError, MxbaiReranker, cli  # noqa: E402
from mxbai_integrations.eval import EvalDataError, EvalReport, evaluate, load_beir, read_trec_run  # noqa: E402

DOCS = {
    "geo-1": ("Canberra", "Canberra is the capital city of Australia, purpose-built between Sydney and Melbourne."),
    "geo-2": ("Sydney", "Sydney is the largest city in Australia and the capital of New South Wales."),
    "geo-3": ("Capital gains", "Australia's capital gains tax applies when you sell shares or an investment property."),
    "geo-4": ("Wellington", "Wellington is the capital of New Zealand, at the southern tip of the North Island."),
    "bio-1": ("Photosynthesis", "Photosynthesis converts light energy into chemical energy in chloroplasts."),
    "bio-2": ("Chlorophyll", "Chlorophyll absorbs blue and red light, which is why leaves look green."),
    "bio-3": ("Mitochondria", "Mitochondria release the energy stored in food through cellular respiration."),
    "bio-4": ("Vitamin D", "Sunlight exposure helps the human body make vitamin D."),
    "lit-1": ("Pride and Prejudice", "Pride and Prejudice is a novel by Jane Austen, published in 1813."),
    "lit-2": ("Emma", "Jane Austen also wrote Emma, Persuasion and Sense and Sensibility."),
    "lit-3": ("Prejudice", "Prejudice in hiring remains a problem that structured interviews can reduce."),
    "lit-4": ("Brontë", "Charlotte Brontë wrote Jane Eyre, published under the pen name Currer Bell."),
    "tech-1": ("Python", "Python is a programming language created by Guido van Rossum in 1991."),
    "tech-2": ("Pythons", "Pythons are large constricting snakes found in Africa, Asia and Australia."),
    "tech-3": ("Rust", "Rust is a systems programming language focused on memory safety."),
    "tech-4": ("Compilers", "A compiler translates source code in a programming language into machine code."),
    "food-1": ("Sourdough", "Sourdough bread rises with a starter of wild yeast and lactic acid bacteria."),
    "food-2": ("Yeast", "Baker's yeast makes bread dough rise by producing carbon dioxide."),
    "food-3": ("Bread history", "Bread has been baked for at least fourteen thousand years."),
    "food-4": ("Pasta", "Fresh pasta is made from flour and eggs and cooks in a few minutes."),
    "space-1": ("Mars", "Mars is the fourth planet from the Sun and has two small moons, Phobos and Deimos."),
    "space-2": ("Moon", "The Moon is Earth's only natural satellite and causes the ocean tides."),
    "space-3": ("Jupiter", "Jupiter is the largest planet in the solar system and has dozens of moons."),
    "space-4": ("Mars bar", "The Mars bar is a chocolate bar first made in England in 1932."),
}
QUERIES = {
    "q1": "What is the capital of Australia?",
    "q2": "How do plants turn light into energy?",
    "q3": "Who wrote Pride and Prejudice?",
    "q4": "Who created the Python programming language?",
    "q5": "What makes bread rise?",
    "q6": "How many moons does Mars have?",
    "q7": "Which planet is the largest?",
    "q8": "What causes ocean tides?",
    "q9": "A query nobody judged",
}
# q1's geo-2 is judged not relevant (0); q8's gone-1 is not in the corpus; q9 has no judgement; q404 is no query.
QRELS = [
    ("q1", "geo-1", 2), ("q1", "geo-2", 0), ("q2", "bio-1", 2), ("q2", "bio-2", 1), ("q3", "lit-1", 2),
    ("q3", "lit-2", 1), ("q4", "tech-1", 2), ("q5", "food-1", 1), ("q5", "food-2", 2), ("q6", "space-1", 2),
    ("q7", "space-3", 2), ("q8", "space-2", 2), ("q8", "gone-1", 1), ("q404", "geo-1", 1),
]
EVALUATED = ["q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"]
TREC_MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map": "map"}


def write_beir(root: Path, *, qrels_lines: list[str] | None = None) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, (title, text) in DOCS.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = qrels_lines or ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{r}" for q, d, r in QRELS)]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "data")


def judged_qrels(queries: list[str] = EVALUATED) -> dict[str, dict[str, int]]:
    """The qrels as trec_eval sees them: documents outside the corpus cannot be retrieved and are left out."""
    out: dict[str, dict[str, int]] = {}
    for q, d, r in QRELS:
        if q in queries and d in DOCS:
            out.setdefault(q, {})[d] = r
    return out


def trec_eval(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """pytrec_eval's per-query values, named as ranx names them; MRR@10 is recip_rank over the top 10."""
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map", "recip_rank"})
    full = evaluator.evaluate({q: dict(docs) for q, docs in run.items() if docs})
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in run.items() if docs}
    cut = evaluator.evaluate(top10)
    out: dict[str, dict[str, float]] = {}
    for q in qrels:  # a query the run has nothing for scores 0 (trec_eval -c)
        out[q] = {m: full.get(q, {}).get(name, 0.0) for m, name in TREC_MEASURES.items()}
        out[q]["mrr@10"] = cut.get(q, {}).get("recip_rank", 0.0)
    return out


def assert_matches_trec_eval(report: EvalReport, qrels: dict[str, dict[str, int]]) -> None:
    for result in report.runs:
        reference = trec_eval(qrels, result.run)
        for metric in report.metrics:
            expected = [reference[q][metric] for q in report.query_ids]
            np.testing.assert_allclose(result.per_query[metric], expected, atol=1e-9,
                                       err_msg=f"{result.name} {metric}")
            assert result.metrics[metric] == pytest.approx(float(np.mean(expected)), abs=1e-12)


class TableReranker(MxbaiReranker):
    """A real reranker whose scores come from a table: (query text, document text) -> score, 0 elsewhere."""

    def __init__(self, artifact: Path, table: dict[tuple[str, str], float]) -> None:
        super().__init__(artifact, providers=["CPUExecutionProvider"])
        self.table = table

    def score(self, query: str, documents, **_: object) -> list[float]:  # type: ignore[override]
        return [float(self.table.get((query, doc), 0.0)) for doc in documents]


def doc_text(doc_id: str) -> str:
    title, text = DOCS[doc_id]
    return f"{title} {text}"


# ------------------------------------------------------------------------------------------- data loading


def test_load_beir_counts_what_it_skips(data_dir: Path) -> None:
    data = load_beir(data_dir)
    assert list(data.queries) == EVALUATED  # q9 has no judgement: skipped
    assert data.queries_without_qrels == 1
    assert data.qrels_unknown_documents == 1  # q8 gone-1
    assert data.qrels_unknown_queries == 1  # q404
    assert data.qrels == judged_qrels()
    assert data.corpus["lit-4"] == doc_text("lit-4")  # the title goes before the text
    # TREC-style qrels (query iteration document relevance) read the same.
    trec = write_beir(data_dir.parent / "trec", qrels_lines=[f"{q} 0 {d} {r}" for q, d, r in QRELS])
    assert load_beir(trec).qrels == data.qrels


BAD_FILES = [
    ("corpus.jsonl", 3, "not valid JSON", lambda lines: lines[:2] + ['{"_id": "x", "text": '] + lines[3:]),
    ("corpus.jsonl", 2, '"text" must be a string', lambda lines: lines[:1] + ['{"_id": "x"}'] + lines[2:]),
    ("corpus.jsonl", 5, "duplicate _id 'geo-1' (first on line 1)", lambda lines: lines[:4] + lines[:1] + lines[5:]),
    ("queries.jsonl", 4, 'expected a non-empty "_id"', lambda lines: lines[:3] + ['{"text": "q"}'] + lines[4:]),
    ("qrels/test.tsv", 4, "expected 3 tab-separated fields", lambda lines: lines[:3] + ["q1\tgeo-1"] + lines[4:]),
    ("qrels/test.tsv", 3, "relevance must be an integer, got 'high'",
     lambda lines: lines[:2] + ["q1\tgeo-2\thigh"] + lines[3:]),
]


@pytest.mark.parametrize(("name", "line", "message", "edit"), BAD_FILES, ids=[f"{b[0]}:{b[1]}" for b in BAD_FILES])
def test_malformed_line_is_named_with_its_line_number(data_dir: Path, name: str, line: int, message: str,
                                                     edit) -> None:
    path = data_dir / name
    path.write_text("\n".join(edit(path.read_text(encoding="utf-8").splitlines())) + "\n", encoding="utf-8")
    with pytest.raises(EvalDataError) as info:
        load_beir(data_dir)
    assert f"{path}:{line}: " in str(info.value)
    assert message in str(info.value)


def test_missing_files_and_splits(data_dir: Path) -> None:
    with pytest.raises(EvalDataError, match="available splits: test"):
        load_beir(data_dir, split="dev")
    with pytest.raises(EvalDataError, match="does not exist"):
        load_beir(data_dir / "nope")
    (data_dir / "corpus.jsonl").unlink()
    with pytest.raises(EvalDataError, match=r"corpus\.jsonl' does not exist \(a BEIR directory holds"):
        load_beir(data_dir)


def test_qrels_matching_no_document_is_an_error(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "d", qrels_lines=["q1\tdoc-404\t1", "q2\tdoc-405\t1"])
    with pytest.raises(EvalDataError, match="none of its documents are in"):
        load_beir(root)


def test_malformed_run_file(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 geo-1 1 2.5 bm25\nq1 Q0 geo-2 2 bm25\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match=rf"{path}:2: expected 6 fields"):
        read_trec_run(path)
    path.write_text("q1 Q0 geo-1 1 2.5 bm25\n\nq1 Q0 geo-2 2 high bm25\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match=rf"{path}:3: score must be a number, got 'high'"):
        read_trec_run(path)


def _rewrite(path: Path, *, bom: bool = False, crlf: bool = False, header: bool = True) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not header:
        lines = lines[1:]
    text = ("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


@pytest.mark.parametrize(("bom", "crlf"), [(True, False), (False, True), (True, True)],
                         ids=["bom", "crlf", "bom+crlf"])
def test_bom_and_crlf_read_like_plain_utf8(data_dir: Path, tmp_path: Path, bom: bool, crlf: bool) -> None:
    """A BOM glued to the first qrels/run query id used to drop its judgements without a word."""
    want = load_beir(data_dir)
    for name in ("corpus.jsonl", "queries.jsonl"):
        _rewrite(data_dir / name, bom=bom, crlf=crlf)
    _rewrite(data_dir / "qrels" / "test.tsv", bom=bom, crlf=crlf, header=False)  # q1 on the first line
    got = load_beir(data_dir)
    assert (got.corpus, got.queries, got.qrels) == (want.corpus, want.queries, want.qrels)
    assert got.qrels_unknown_queries == want.qrels_unknown_queries
    run = full_run_file(tmp_path / "run.trec")
    plain = read_trec_run(run)
    _rewrite(run, bom=bom, crlf=crlf, header=True)
    assert read_trec_run(run) == plain and "q1" in plain


def test_broken_first_line_and_json_array_are_named(data_dir: Path) -> None:
    corpus = data_dir / "corpus.jsonl"
    lines = corpus.read_text(encoding="utf-8").splitlines()
    corpus.write_bytes(b"\xef\xbb\xbf" + ("\n".join(['{"_id": "x", "text": ', *lines[1:]]) + "\n").encode())
    with pytest.raises(EvalDataError, match=rf"{corpus}:1: not valid JSON"):
        load_beir(data_dir)
    corpus.write_text(json.dumps([json.loads(line) for line in lines], indent=2), encoding="utf-8")
    with pytest.raises(EvalDataError, match=rf"{corpus}:1: starts a JSON array; corpus.jsonl must hold one JSON "
                                            r"object per line"):
        load_beir(data_dir)
    assert issubclass(EvalDataError, ArgumentError) and issubclass(EvalDataError, ValueError)


# ------------------------------------------------------------------------------------------------ metrics


def full_run_file(path: Path) -> Path:
    """Every document for every evaluated query, in corpus order (scores 24 .. 1): a known permutation."""
    lines = [f"{q} Q0 {d} {rank} {len(DOCS) - rank + 1} fixed" for q in EVALUATED
             for rank, d in enumerate(DOCS, 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_oracle_gets_ndcg_1_and_known_permutations_hand_computed_values(data_dir: Path, v2_artifact: Path,
                                                                        tmp_path: Path) -> None:
    relevance = {(QUERIES[q], doc_text(d)): float(r) for q, d, r in QRELS if d in DOCS and q in QUERIES}
    # q3: lit-1 (relevance 2) and lit-2 (1) swapped.
    swapped = {**relevance, (QUERIES["q3"], doc_text("lit-1")): 1.0, (QUERIES["q3"], doc_text("lit-2")): 2.0}
    report = evaluate([TableReranker(v2_artifact, relevance), TableReranker(v2_artifact, swapped)], data_dir,
                      run=full_run_file(tmp_path / "fixed.trec"), names=["oracle", "swapped"], show_progress=False)
    assert [r.name for r in report.runs] == ["fixed", "oracle", "swapped"]
    oracle = report.run("oracle")
    for metric in ("ndcg@10", "mrr@10", "map", "recall@100"):
        assert oracle.metrics[metric] == pytest.approx(1.0)
        assert oracle.per_query[metric] == pytest.approx([1.0] * len(EVALUATED))

    q3 = report.query_ids.index("q3")
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert report.run("swapped").per_query["ndcg@10"][q3] == pytest.approx((1 / math.log2(2) + 2 / math.log2(3)) / idcg)
    assert report.run("swapped").per_query["mrr@10"][q3] == pytest.approx(1.0)
    # The first stage puts lit-1 and lit-2 at ranks 9 and 10 (corpus order).
    fixed = report.run("fixed")
    assert fixed.per_query["ndcg@10"][q3] == pytest.approx((2 / math.log2(10) + 1 / math.log2(11)) / idcg)
    assert fixed.per_query["mrr@10"][q3] == pytest.approx(1 / 9)
    assert fixed.per_query["map"][q3] == pytest.approx((1 / 9 + 2 / 10) / 2)
    assert report.data.first_stage == f"fixed ({tmp_path / 'fixed.trec'})"
    assert_matches_trec_eval(report, judged_qrels())
    # The oracle beats the fixed first stage significantly on NDCG@10; nothing beats the oracle.
    assert "fixed" in oracle.better_than["ndcg@10"]
    assert all("oracle" not in r.better_than["ndcg@10"] for r in report.runs)
    assert oracle.p_values["fixed"]["ndcg@10"] < 0.05
    # Identical per-query values (recall@100 is 1 for all) leave the paired test undefined: None, not NaN.
    assert oracle.p_values["fixed"]["recall@100"] is None


def test_run_file_depth_unknown_documents_and_missing_queries(data_dir: Path, v2_artifact: Path,
                                                              tmp_path: Path) -> None:
    run = full_run_file(tmp_path / "r.trec")
    text = run.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("q8 ")) + "\n"
    run.write_text(text + "q1 Q0 ghost 0 99 fixed\n", encoding="utf-8")
    relevance = {(QUERIES[q], doc_text(d)): float(r) for q, d, r in QRELS if d in DOCS and q in QUERIES}
    report = evaluate([TableReranker(v2_artifact, relevance)], data_dir, run=run, depth=5, limit_queries=8,
                      names=["oracle"], show_progress=False)
    d = report.data
    assert (d.run_unknown_documents, d.queries_without_candidates, d.depth, d.limit_queries) == (1, 1, 5, 8)
    first = report.first_stage
    assert all(len(first.run[q]) == 5 for q in EVALUATED if q != "q8") and first.run["q8"] == {}
    assert first.queries == 7 and report.run("oracle").pairs == 35
    assert_matches_trec_eval(report, judged_qrels())
    assert report.run("oracle").per_query["ndcg@10"][report.query_ids.index("q8")] == 0.0
    table = report.format_table()
    assert "run lines naming documents not in the corpus (dropped): 1" in table
    assert "queries without first-stage candidates (scored 0): 1" in table


def test_fp32_and_int8_v2_against_bm25(data_dir: Path, v2_checkpoint: Path, v2_artifact: Path, export_artifact,
                                       tmp_path: Path) -> None:
    int8 = export_artifact(v2_checkpoint, "int8")
    report = evaluate([v2_artifact, int8], data_dir, depth=100, show_progress=False,
                      instruction="Find the passage that answers the question")
    names = ["bm25", v2_artifact.name, int8.name]
    assert [r.name for r in report.runs] == names
    assert report.query_ids == EVALUATED
    assert report.data.queries_without_qrels == 1 and report.data.qrels_unknown_documents == 1
    assert [r.model.dtype for r in report.rerankers] == ["fp32", "int8"]  # type: ignore[union-attr]
    assert report.rerankers[0].model.instruction == "Find the passage that answers the question"  # type: ignore
    assert_matches_trec_eval(report, judged_qrels())

    # Every reranker scored exactly the first stage's candidates, and the clock ran.
    bm25 = report.first_stage
    for result in report.rerankers:
        assert {q: set(docs) for q, docs in result.run.items()} == {q: set(docs) for q, docs in bm25.run.items()}
        assert result.pairs == sum(len(docs) for docs in bm25.run.values()) and result.queries == 8
        assert result.seconds > 0 and result.queries_per_s > 0 and result.docs_per_s > 0  # type: ignore[operator]
    # The reranker's scores are the model's own (MxbaiReranker.score on the same pairs).
    fp32 = MxbaiReranker(v2_artifact, providers=["CPUExecutionProvider"])
    docs = list(report.rerankers[0].run["q3"])
    expected = fp32.score(QUERIES["q3"], [doc_text(d) for d in docs],
                          instruction="Find the passage that answers the question")
    assert [report.rerankers[0].run["q3"][d] for d in docs] == pytest.approx(expected, abs=1e-6)

    # Agreement: scipy's Spearman and the top-10 overlap, averaged over queries with 2+ candidates.
    from scipy.stats import spearmanr

    (agree,) = report.agreement
    a, b = report.rerankers[0].run, report.rerankers[1].run
    multi = [q for q in EVALUATED if len(a[q]) >= 2]
    rhos = [spearmanr([a[q][d] for d in a[q]], [b[q][d] for d in a[q]]).statistic for q in multi]
    assert (agree.a, agree.b, agree.queries) == (v2_artifact.name, int8.name, len(multi))
    assert agree.spearman == pytest.approx(float(np.mean(rhos)))
    overlap = [len(set(sorted(a[q], key=lambda d: -a[q][d])[:10]) & set(sorted(b[q], key=lambda d: -b[q][d])[:10]))
               / min(10, len(a[q])) for q in multi]
    assert agree.top10_overlap == pytest.approx(float(np.mean(overlap)))

    # JSON round trip, with and without the rankings.
    full = EvalReport.from_json(report.to_json(include_runs=True))
    assert full == report
    light = EvalReport.from_json(report.to_json())
    assert [r.run for r in light.runs] == [{}, {}, {}]
    assert light.to_json() == report.to_json() and light.format_table() == report.format_table()

    # TREC files that trec_eval reads back to the same numbers; a plot.
    paths = report.save_runs(tmp_path / "runs")
    assert [p.name for p in paths] == [f"{n}.trec" for n in names]
    for path, result in zip(paths, report.runs, strict=True):
        with path.open() as handle:
            parsed = pytrec_eval.parse_run(handle)
        values = pytrec_eval.RelevanceEvaluator(judged_qrels(), {"ndcg_cut.10"}).evaluate(parsed)
        assert float(np.mean([values[q]["ndcg_cut_10"] for q in EVALUATED])) == pytest.approx(
            result.metrics["ndcg@10"], abs=1e-12)
    with pytest.raises(ValueError, match="no scored candidates"):
        light.save_runs(tmp_path / "again")
    fig = report.plot(tmp_path / "eval.png")
    assert (tmp_path / "eval.png").stat().st_size > 5000 and len(fig.axes[0].patches) == 3 * 4

    table = report.format_table()
    assert "NDCG@10" in table and "Recall@100" in table and "queries/s" in table
    assert f"{v2_artifact.name} vs {int8.name}  Spearman" in table
    assert "queries of queries.jsonl without a relevant document in the test qrels (skipped): 1" in table


def _report(runs: dict[str, dict[str, tuple[float, float]]]) -> EvalReport:
    """A report with the given (mean, ci95 half-width) per run and metric; nothing else in it matters to plot()."""
    from mxbai_integrations.eval import DatasetSummary, RunResult

    metrics = list(next(iter(runs.values())))
    results = [RunResult(name=name, kind="reranker", metrics={m: v[0] for m, v in values.items()},
                         ci95={m: v[1] for m, v in values.items()}, per_query={}) for name, values in runs.items()]
    summary = DatasetSummary(data_dir="d", split="test", first_stage="bm25", depth=10, corpus_documents=5, queries=3)
    return EvalReport(data=summary, metrics=metrics, stat_test="student", max_p=0.05, query_ids=[], runs=results)


def _drawn_bars(fig) -> dict[tuple[str, int], tuple[float, float, float]]:
    """(run, metric position) -> (bar height, lower end, upper end of its error bar), read off the axes."""
    ax = fig.axes[0]
    out = {}
    for container in ax.containers:
        if not hasattr(container, "errorbar"):
            continue
        segments = container.errorbar.lines[2][0].get_segments()
        for j, (bar, segment) in enumerate(zip(container.patches, segments, strict=True)):
            ys = sorted(float(y) for _, y in segment)
            out[(container.get_label(), j)] = (bar.get_height(), ys[0], ys[1])
    return out


def test_plot_error_bars_stay_inside_what_the_metric_can_reach(tmp_path: Path) -> None:
    report = _report({
        "near-one": {"ndcg@10": (0.95, 0.12), "mrr@10": (1.0, 0.0), "dcg@10": (3.0, 0.5)},
        "near-zero": {"ndcg@10": (0.03, 0.10), "mrr@10": (0.5, 0.2), "dcg@10": (0.1, 0.4)},
    })
    bars = _drawn_bars(report.plot(tmp_path / "ci.png"))
    assert len(bars) == 6
    assert bars[("near-one", 0)] == pytest.approx((0.95, 0.83, 1.0))  # NDCG cut at 1, not 1.07
    assert bars[("near-one", 1)] == pytest.approx((1.0, 1.0, 1.0))
    assert bars[("near-one", 2)] == pytest.approx((3.0, 2.5, 3.5))  # DCG is not bounded by 1
    assert bars[("near-zero", 0)] == pytest.approx((0.03, 0.0, 0.13))  # and nothing goes below 0
    assert bars[("near-zero", 1)] == pytest.approx((0.5, 0.3, 0.7))
    assert bars[("near-zero", 2)] == pytest.approx((0.1, 0.0, 0.5))
    assert report.run("near-one").ci95["ndcg@10"] == 0.12  # the record keeps the half-width as computed


def test_reranker_options_record_and_the_loose_parameters(data_dir: Path, v1_artifact: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mxbai_integrations import RerankerOptions
    from mxbai_integrations.eval import runner

    with pytest.raises(ArgumentError, match=r"reranker_options: \['max_length'\] apply to models given as paths"):
        evaluate([MxbaiReranker(v1_artifact, providers=["cpu"])], data_dir, reranker_options={"max_length": 64})
    seen: list[RerankerOptions] = []

    class Spy(MxbaiReranker):
        def __init__(self, model, *, options=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
            seen.append(options)
            super().__init__(model, options=options, **kwargs)

    monkeypatch.setattr(runner, "MxbaiReranker", Spy)
    run = {"q1": {"geo-1": 2.0, "geo-2": 1.0}, "q2": {"bio-1": 1.0}}
    evaluate([v1_artifact], data_dir, run=run, show_progress=False, providers=["cpu"], max_length=64,
             reranker_options={"batch_size": 4, "allow_fallback": True})
    evaluate([v1_artifact], data_dir, run=run, show_progress=False,
             reranker_options=RerankerOptions(providers=["cpu"], batch_size=4), batch_size=4)
    evaluate([v1_artifact], data_dir, run=run, show_progress=False, providers=["cpu"])
    assert seen == [
        RerankerOptions(providers=["cpu"], max_length=64, batch_size=4, allow_fallback=True),
        RerankerOptions(providers=["cpu"], batch_size=4),
        RerankerOptions(providers=["cpu"]),
    ]
    assert seen[2].batch_size == 32  # the record's default, the same as the CLI's --batch-size

    with pytest.raises(ArgumentError, match=r"batch_size: given as 16 and in reranker_options as 8"):
        evaluate([v1_artifact], data_dir, batch_size=16, reranker_options={"batch_size": 8})
    with pytest.raises(ArgumentError, match=r"providers: given as .* and in reranker_options"):
        evaluate([v1_artifact], data_dir, providers=["cuda"], reranker_options=RerankerOptions(providers=["cpu"]))
    with pytest.raises(ArgumentError, match=r"reranker_options: unknown option\(s\) \['batchsize'\]"):
        evaluate([v1_artifact], data_dir, reranker_options={"batchsize": 8})
    with pytest.raises(ArgumentError, match="limit_queries must be a positive int"):
        evaluate([v1_artifact], data_dir, limit_queries=0)
    with pytest.raises(TypeError, match="instruction must be a str"):
        evaluate([v1_artifact], data_dir, instruction=3)
    assert len(seen) == 3  # every refusal came before a model was loaded


def test_api_argument_errors(data_dir: Path, v2_artifact: Path) -> None:
    with pytest.raises(ValueError, match="models: give at least one"):
        evaluate([], data_dir)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        evaluate([v2_artifact], data_dir, depth=0)
    with pytest.raises(ValueError, match="stat_test must be one of"):
        evaluate([v2_artifact], data_dir, stat_test="wilcoxon")
    with pytest.raises(ValueError, match="'ndcg@x' is not a ranx metric"):
        evaluate([v2_artifact], data_dir, metrics=["ndcg@10", "ndcg@x"], show_progress=False)
    with pytest.raises(ValueError, match="names must be unique"):
        evaluate([v2_artifact, v2_artifact], data_dir, names=["a", "a"], show_progress=False)


# -------------------------------------------------------------------------------------------------- CLI


def test_cli_eval_table_json_runs_plot(data_dir: Path, v1_artifact: Path, v2_artifact: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["eval", str(v2_artifact), str(v1_artifact), "--data", str(data_dir), "--limit-queries", "5",
                     "--depth", "10", "--batch-size", "4", "--providers", "cpu", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    header = next(line for line in out.splitlines() if "NDCG@10" in line)
    assert header.split() == ["run", "NDCG@10", "MRR@10", "Recall@100", "MAP", "queries/s", "docs/s"]
    assert "data          " in out and "5 queries" in out and "first stage   bm25 (bm25s), top 10" in out
    assert f"{v2_artifact.name} vs {v1_artifact.name}" in out
    assert "limited to the first 5 queries with qrels" in out

    runs, plot = tmp_path / "runs", tmp_path / "eval.svg"
    code = cli.main(["eval", str(v2_artifact), "--data", str(data_dir), "--json", "--save-runs", str(runs),
                     "--plot", str(plot), "--test", "fisher", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = EvalReport.from_json(out)
    assert report.stat_test == "fisher" and [r.name for r in report.runs] == ["bm25", v2_artifact.name]
    assert sorted(p.name for p in runs.iterdir()) == ["bm25.trec", f"{v2_artifact.name}.trec"]
    assert plot.read_text(encoding="utf-8").lstrip().startswith("<?xml")


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mxbai-onnx: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_eval_bad_input_one_line_exit_2(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(tmp_path)  # a directory, never loaded: the data are checked before any model is loaded
    corpus = data_dir / "corpus.jsonl"
    lines = corpus.read_text(encoding="utf-8").splitlines()
    corpus.write_text("\n".join([*lines[:6], "{not json", *lines[7:]]) + "\n", encoding="utf-8")
    assert cli.main(["eval", model, "--data", str(data_dir), "-q"]) == 2
    assert_one_line_error(capsys.readouterr().err, f"{corpus}:7: not valid JSON")

    assert cli.main(["eval", model, "--data", str(tmp_path / "nowhere"), "-q"]) == 2
    assert_one_line_error(capsys.readouterr().err, "data: ", "does not exist")

    good = write_beir(tmp_path / "good")
    bad_run = tmp_path / "bad.trec"
    bad_run.write_text("q1 Q0 geo-1 1 3.0 x\nq1 Q0 geo-2 2\n", encoding="utf-8")
    assert cli.main(["eval", model, "--data", str(good), "--run", str(bad_run), "-q"]) == 2
    assert_one_line_error(capsys.readouterr().err, f"{bad_run}:2: expected 6 fields")

    assert cli.main(["eval", model, "--data", str(good), "--split", "dev", "-q"]) == 2
    assert_one_line_error(capsys.readouterr().err, "available splits: test")

    assert cli.main(["eval", model, "--data", str(good), "--plot", str(tmp_path / "x.gif"), "-q"]) == 2
    assert_one_line_error(capsys.readouterr().err, "--plot", ".png")

    started = time.perf_counter()
    missing = str(tmp_path / "no-such-artifact")
    assert cli.main(["eval", missing, "--data", str(good), "-q"]) == 2
    assert_one_line_error(capsys.readouterr().err, f"model: {missing!r} does not exist")
    assert time.perf_counter() - started < 5  # before BM25 and ranx

    assert cli.main(["eval", model, "--data", str(good), "--depth", "0"]) == 2
    assert "expected a positive integer" in capsys.readouterr().err
