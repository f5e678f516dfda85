"""Reading a BEIR-format directory and TREC run files, with errors that name the file and the line.

A BEIR directory is what users already have for their own data (the format of the BEIR benchmark,
also written by ``beir``, ``ir_datasets`` exports and MTEB retrieval tasks)::

    corpus.jsonl        {"_id": "d1", "title": "...", "text": "..."}      one document per line
    queries.jsonl       {"_id": "q1", "text": "..."}                      one query per line
    qrels/test.tsv      query-id <TAB> corpus-id <TAB> score              header line optional

qrels lines in TREC form (``q1 0 d1 1``) are read too. Files written on Windows or exported from a
spreadsheet read the same: a leading UTF-8 byte-order mark is dropped and CRLF ends a line (a BOM
left in place would glue itself to the first query id and drop its judgements without a word).
Everything here is plain Python: no optional dependency, so a malformed file is reported before
ranx, bm25s or a model is loaded.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mxbai_integrations.errors import ArgumentError

logger = logging.getLogger(__name__)

CORPUS_NAME = "corpus.jsonl"
QUERIES_NAME = "queries.jsonl"
QRELS_DIR = "qrels"
BEIR_LAYOUT = f"a BEIR directory holds {CORPUS_NAME}, {QUERIES_NAME} and {QRELS_DIR}/<split>.tsv"


class EvalDataError(ArgumentError):
    """Evaluation input that cannot be used as given; the message names the file (and line).

    An ``ArgumentError`` (so a ``ValueError``): the data are the caller's input, and the CLI reports
    them as a usage error (exit status 2).
    """


@dataclass
class BeirData:
    """The parts of a BEIR directory an evaluation needs, already cross-checked.

    Attributes:
        corpus: document id -> text ("title text" when the document has a title), in file order.
        queries: query id -> text, only the queries that can be evaluated (at least one relevant
            document of the corpus in the qrels), in queries.jsonl order.
        qrels: query id -> {document id: relevance}, restricted to ``queries`` and to documents of
            the corpus.
        queries_without_qrels: queries of queries.jsonl with no relevance > 0 in the split (skipped).
        qrels_unknown_documents: qrels lines naming a document that is not in the corpus (dropped).
        qrels_unknown_queries: query ids of the qrels that are not in queries.jsonl (dropped).
    """

    data_dir: Path
    split: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    queries_without_qrels: int = 0
    qrels_unknown_documents: int = 0
    qrels_unknown_queries: int = 0
    files: dict[str, Path] = field(default_factory=dict)


def _require_file(path: Path, what: str) -> Path:
    if not path.exists():
        raise EvalDataError(f"{what}: {str(path)!r} does not exist ({BEIR_LAYOUT})")
    if not path.is_file():
        raise EvalDataError(f"{what}: {str(path)!r} is not a file")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers, without a leading BOM or the line ends (LF or CRLF).

    U+2028 and friends may sit inside a text: only the file's own line ends end a record.
    """
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            for number, line in enumerate(handle, 1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise EvalDataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _json_records(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    first = True
    for number, line in _lines(path):
        if first and line.lstrip().startswith("["):
            raise EvalDataError(f"{path}:{number}: starts a JSON array; {path.name} must hold one JSON object per "
                                "line (JSON lines), as BEIR writes it")
        first = False
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise EvalDataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def _record_id(path: Path, number: int, record: dict[str, object]) -> str:
    value = record.get("_id")
    # BEIR writes ids as strings; some exports write integers. Both name the same thing in qrels.
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise EvalDataError(f'{path}:{number}: expected a non-empty "_id" (string), got {value!r}')
    return str(value)


def _record_text(path: Path, number: int, record: dict[str, object], key: str, *, required: bool) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        got = "nothing" if value is None else type(value).__name__
        raise EvalDataError(f'{path}:{number}: "{key}" must be a string, got {got}')
    return value


def read_corpus(path: str | os.PathLike[str]) -> dict[str, str]:
    """corpus.jsonl -> {id: text}; the title, when present, goes before the text as BEIR's rerankers do."""
    path = _require_file(Path(path), "corpus")
    corpus: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, record in _json_records(path):
        doc_id = _record_id(path, number, record)
        if doc_id in corpus:
            raise EvalDataError(f"{path}:{number}: duplicate _id {doc_id!r} (first on line {first_line[doc_id]})")
        title = _record_text(path, number, record, "title", required=False).strip()
        text = _record_text(path, number, record, "text", required=True).strip()
        if not (title or text):
            raise EvalDataError(f"{path}:{number}: document {doc_id!r} has no text")
        corpus[doc_id] = f"{title} {text}".strip()
        first_line[doc_id] = number
    if not corpus:
        raise EvalDataError(f"{path}: no documents (the file is empty)")
    return corpus


def read_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """queries.jsonl -> {id: text}, in file order."""
    path = _require_file(Path(path), "queries")
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, record in _json_records(path):
        query_id = _record_id(path, number, record)
        if query_id in queries:
            raise EvalDataError(f"{path}:{number}: duplicate _id {query_id!r} (first on line {first_line[query_id]})")
        text = _record_text(path, number, record, "text", required=True)
        if not text.strip():
            raise EvalDataError(f"{path}:{number}: query {query_id!r} has empty text")
        queries[query_id] = text
        first_line[query_id] = number
    if not queries:
        raise EvalDataError(f"{path}: no queries (the file is empty)")
    return queries


def _relevance(path: Path, number: int, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise EvalDataError(f"{path}:{number}: relevance must be an integer, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise EvalDataError(f"{path}:{number}: relevance must be an integer, got {text!r}")
    return int(value)


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """qrels/<split>.tsv -> {query id: {document id: relevance}}.

    Lines are ``query-id <TAB> corpus-id <TAB> score`` (BEIR; a first line whose score is not a
    number is the header) or ``query-id iteration corpus-id score`` (TREC qrels).
    """
    path = _require_file(Path(path), "qrels")
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _lines(path):
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) == 3:
            query_id, doc_id, score = fields
        elif len(fields) == 4:
            query_id, _, doc_id, score = fields
        else:
            raise EvalDataError(f"{path}:{number}: expected 3 tab-separated fields (query-id, corpus-id, score) "
                                f"or 4 TREC fields (query-id, iteration, corpus-id, relevance), got {len(fields)}")
        if not qrels and number == 1 and not _is_number(score):
            continue  # the BEIR header "query-id corpus-id score"
        if not query_id or not doc_id:
            raise EvalDataError(f"{path}:{number}: empty query or document id")
        qrels.setdefault(query_id, {})[doc_id] = _relevance(path, number, score)
    if not qrels:
        raise EvalDataError(f"{path}: no relevance judgements (the file is empty)")
    return qrels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_trec_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """A TREC run file (``qid Q0 docid rank score tag``, whitespace-separated) -> {qid: {docid: score}}.

    Ranks are not trusted: order comes from the scores, as trec_eval and ranx do.
    """
    path = Path(path)
    if not path.exists():
        raise EvalDataError(f"run: {str(path)!r} does not exist")
    if not path.is_file():
        raise EvalDataError(f"run: {str(path)!r} is not a file")
    run: dict[str, dict[str, float]] = {}
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 6:
            raise EvalDataError(f"{path}:{number}: expected 6 fields (qid Q0 docid rank score tag), got {len(fields)}")
        query_id, _, doc_id, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise EvalDataError(f"{path}:{number}: score must be a number, got {score_text!r}") from None
        if not math.isfinite(score):
            raise EvalDataError(f"{path}:{number}: score must be finite, got {score_text!r}")
        docs = run.setdefault(query_id, {})
        if doc_id in docs:
            raise EvalDataError(f"{path}:{number}: document {doc_id!r} appears twice for query {query_id!r}")
        docs[doc_id] = score
    if not run:
        raise EvalDataError(f"{path}: no results (the file is empty)")
    return run


def load_beir(data_dir: str | os.PathLike[str], split: str = "test") -> BeirData:
    """Read and cross-check a BEIR directory; queries without relevant documents are skipped and counted.

    qrels naming a document that is not in the corpus are dropped (no system can retrieve it) and
    counted; so are qrels of queries missing from queries.jsonl. Raises :class:`EvalDataError`
    when nothing is left to evaluate.

    Examples:
        >>> data = load_beir("my-data", split="test")  # doctest: +SKIP
        >>> len(data.queries), len(data.corpus), data.queries_without_qrels  # doctest: +SKIP
        (50, 5183, 0)
    """
    directory = Path(data_dir).expanduser()
    if not directory.exists():
        raise EvalDataError(f"data: {str(data_dir)!r} does not exist ({BEIR_LAYOUT})")
    if not directory.is_dir():
        raise EvalDataError(f"data: {str(data_dir)!r} is not a directory ({BEIR_LAYOUT})")
    if not isinstance(split, str) or not split or "/" in split or "\\" in split:
        raise EvalDataError(f"split must be a file name such as 'test', got {split!r}")
    qrels_path = directory / QRELS_DIR / f"{split}.tsv"
    if not qrels_path.exists():
        splits = sorted(p.stem for p in (directory / QRELS_DIR).glob("*.tsv"))
        have = f"available splits: {', '.join(splits)}" if splits else BEIR_LAYOUT
        raise EvalDataError(f"split: {str(qrels_path)!r} does not exist ({have})")
    corpus = read_corpus(directory / CORPUS_NAME)
    all_queries = read_queries(directory / QUERIES_NAME)
    raw_qrels = read_qrels(qrels_path)

    unknown_docs = 0
    judged_total = 0
    unknown_queries = 0
    qrels: dict[str, dict[str, int]] = {}
    for query_id, judged in raw_qrels.items():
        if query_id not in all_queries:
            unknown_queries += 1
            continue
        known = {doc_id: rel for doc_id, rel in judged.items() if doc_id in corpus}
        judged_total += len(judged)
        unknown_docs += len(judged) - len(known)
        if any(rel > 0 for rel in known.values()):
            qrels[query_id] = known
    if judged_total and unknown_docs == judged_total:
        raise EvalDataError(f"{qrels_path}: none of its documents are in {directory / CORPUS_NAME} "
                            "(do the corpus ids match the qrels' corpus-id column?)")
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    if not queries:
        raise EvalDataError(f"{qrels_path}: no query of {directory / QUERIES_NAME} has a relevant document "
                            f"(relevance > 0) of the corpus in split {split!r}")
    qrels = {qid: qrels[qid] for qid in queries}
    without = len(all_queries) - len(queries)
    if unknown_docs:
        logger.info("%s: %d judgements name documents not in %s; dropped", qrels_path, unknown_docs, CORPUS_NAME)
    if unknown_queries:
        logger.info("%s: %d queries are not in %s; dropped", qrels_path, unknown_queries, QUERIES_NAME)
    return BeirData(
        data_dir=directory, split=split, corpus=corpus, queries=queries, qrels=qrels,
        queries_without_qrels=without, qrels_unknown_documents=unknown_docs, qrels_unknown_queries=unknown_queries,
        files={"corpus": directory / CORPUS_NAME, "queries": directory / QUERIES_NAME, "qrels": qrels_path},
    )
