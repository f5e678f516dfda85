"""The first stage the rerankers reorder: BM25 built on the fly (bm25s), or the user's own TREC run.

Either way the candidates of a query are its best ``depth`` documents by first-stage score, and the
first stage is scored on exactly those candidates, so every comparison is paired on the same pool.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mxbai_integrations.errors import MissingExtraError
from mxbai_integrations.eval.data import EvalDataError

logger = logging.getLogger(__name__)

BM25_NAME = "bm25"


@dataclass
class FirstStage:
    """Candidates per query, best first.

    Attributes:
        name: the run's name in reports ("bm25", or the run file's stem).
        source: "bm25s" or the run file's path.
        run: query id -> {document id: first-stage score}, at most ``depth`` entries, best first.
        seconds: time spent retrieving (BM25 only; indexing excluded), None for a run file.
        unknown_documents: run lines naming documents that are not in the corpus (dropped).
        queries_without_candidates: evaluated queries the first stage returned nothing for.
    """

    name: str
    source: str
    run: dict[str, dict[str, float]]
    seconds: float | None = None
    unknown_documents: int = 0
    queries_without_candidates: int = 0
    index_seconds: float | None = field(default=None, repr=False)


def _top(scores: dict[str, float], depth: int) -> dict[str, float]:
    # Stable sort: equal scores keep the run's own order.
    best = sorted(scores.items(), key=lambda item: -item[1])[:depth]
    return dict(best)


def from_run(run: dict[str, dict[str, float]], corpus: dict[str, str], queries: dict[str, str], depth: int,
             *, name: str, source: str) -> FirstStage:
    """The given run's top ``depth`` per evaluated query; documents it names outside the corpus are dropped."""
    unknown = 0
    out: dict[str, dict[str, float]] = {}
    for query_id in queries:
        scores = run.get(query_id, {})
        known = {doc_id: score for doc_id, score in scores.items() if doc_id in corpus}
        unknown += len(scores) - len(known)
        out[query_id] = _top(known, depth)
    empty = sum(1 for docs in out.values() if not docs)
    if unknown:
        logger.info("run %s: %d results name documents not in the corpus; dropped", source, unknown)
    if empty == len(out):
        raise EvalDataError(f"run: {source} has no results for any evaluated query (do its query ids match "
                         "queries.jsonl and the qrels?)")
    return FirstStage(name=name, source=source, run=out, unknown_documents=unknown, queries_without_candidates=empty)


def bm25(corpus: dict[str, str], queries: dict[str, str], depth: int) -> FirstStage:
    """Okapi BM25 (bm25s, Lucene variant, English stop words) over the corpus; zero-score documents are dropped.

    A document that shares no term with the query is not retrieved, as in Lucene/Pyserini, rather
    than padded into the pool in arbitrary order.
    """
    try:
        import bm25s
        from bm25s.tokenization import Tokenizer
    except ImportError as exc:
        raise MissingExtraError('the BM25 first stage needs bm25s: pip install "mxbai-integrations[eval]" '
                          "(or give a TREC run file)") from exc

    # bm25s sets its logger to DEBUG at import; its index chatter is not news to the user.
    bm25s_logger = logging.getLogger("bm25s")
    level = bm25s_logger.level
    bm25s_logger.setLevel(logging.WARNING)
    try:
        return _bm25(bm25s, Tokenizer, corpus, queries, depth)
    finally:
        bm25s_logger.setLevel(level)


def _bm25(bm25s: Any, tokenizer_class: Any, corpus: dict[str, str], queries: dict[str, str], depth: int) -> FirstStage:
    doc_ids = list(corpus)
    started = time.perf_counter()
    tokenizer = tokenizer_class(stopwords="en")
    corpus_tokens = tokenizer.tokenize([corpus[d] for d in doc_ids], return_as="ids", show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)
    index_seconds = time.perf_counter() - started

    query_ids = list(queries)
    started = time.perf_counter()
    query_tokens = tokenizer.tokenize([queries[q] for q in query_ids], update_vocab=False, return_as="ids",
                                      show_progress=False)
    k = min(depth, len(doc_ids))
    indices, scores = retriever.retrieve(query_tokens, k=k, show_progress=False, n_threads=0)
    seconds = time.perf_counter() - started
    out: dict[str, dict[str, float]] = {}
    for row, query_id in enumerate(query_ids):
        out[query_id] = {doc_ids[int(i)]: float(s) for i, s in zip(indices[row], scores[row], strict=True) if s > 0}
    empty = sum(1 for docs in out.values() if not docs)
    if empty:
        logger.info("bm25: %d queries share no term with any document; they have no candidates", empty)
    return FirstStage(name=BM25_NAME, source="bm25s", run=out, seconds=seconds, queries_without_candidates=empty,
                      index_seconds=index_seconds)
