"""Pair and prompt assembly (prompt.py) against the tokenizers library and the reference libraries.

The v1 encoder tokenizes the query once per request and assembles pairs itself; these tests hold
its ids to what the tokenizer's own pair encoding with longest_first truncation gives (which is
what sentence-transformers' CrossEncoder feeds its model), including queries and documents that
are cut to a verified prefix before tokenizing.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from mxbai_integrations import MxbaiReranker
from mxbai_integrations.artifact import TOKENIZER_NAME
from mxbai_integrations.errors import ArgumentError
from mxbai_integrations.prompt import V1PairEncoder, longest_first

WORDS = ("paris capital france river city the of and a document query relevance ranking "
         "Ｔｈｅ ﬁnance x² naïve 東京 ☃ 1648 ligne").split()


def _reference_pairs(tokenizer_file: Path, query: str, docs: list[str], max_length: int) -> list[list[int]]:
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length, strategy="longest_first")
    return [enc.ids for enc in tok.encode_batch([(query, d) for d in docs], add_special_tokens=True)]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def test_longest_first_matches_the_tokenizers_rule_exhaustively(v1_artifact: Path) -> None:
    """Every (query, document) length pair up to 40 tokens, at several budgets, against the library itself."""
    tok = Tokenizer.from_file(str(v1_artifact / TOKENIZER_NAME))
    tok.no_padding()
    pieces = {n: tok.encode(" ".join(["paris"] * n), add_special_tokens=False) for n in range(0, 41)}
    for max_length in (3, 4, 5, 8, 13, 24, 45):
        tok.enable_truncation(max_length=max_length, strategy="longest_first")
        for nq, q in pieces.items():
            for nd, d in pieces.items():
                pair = tok.post_process(q, d, add_special_tokens=True)
                kept = sum(1 for m in pair.special_tokens_mask if not m)
                assert sum(longest_first(len(q.ids), len(d.ids), max_length - 3)) == kept, (nq, nd, max_length)


@pytest.mark.parametrize("max_length", [5, 16, 64, 512])
def test_v1_pairs_equal_the_tokenizers_pair_encoding(v1_artifact: Path, max_length: int) -> None:
    rng = random.Random(max_length)
    encoder = V1PairEncoder(Tokenizer.from_file(str(v1_artifact / TOKENIZER_NAME)), max_length)
    # Sizes past the budget's cut (budget x 16 + 1024 characters), but small enough for the reference:
    # the tokenizer's own pair truncation keeps every overflowing window of both sides, which
    # grows with their product (that is what made a 100 KB query kill a server).
    big = {5: 30, 16: 250, 64: 400, 512: 2000}[max_length]
    cases = [(_text(rng, rng.choice([1, 3, 30, big])), [_text(rng, rng.choice([0, 1, 5, 40, big, big + 20]))
                                                        for _ in range(12)]) for _ in range(6)]
    # Both sides past the budget and cut before tokenizing: the longer one keeps the odd token.
    long_q = _text(rng, big)
    cases.append((long_q, [long_q, long_q + " paris", _text(rng, big), _text(rng, big + 50), "", " "]))
    for query, docs in cases:
        assert encoder.encode(query, docs) == _reference_pairs(v1_artifact / TOKENIZER_NAME, query, docs, max_length)


def test_v1_long_query_against_cross_encoder(v1_artifact: Path, v1_reference) -> None:
    """A 100 KB query: the ids CrossEncoder's tokenizer makes, and its scores, from one tokenization."""
    rng = random.Random(0)
    query = _text(rng, 25_000)
    assert len(query) > 100_000
    docs = ["Paris is the capital of France.", _text(rng, 3), _text(rng, 300), ""]
    reranker = MxbaiReranker(v1_artifact, providers=["cpu"])
    tok = v1_reference.tokenizer
    want_ids = tok([query] * len(docs), docs, truncation=True, max_length=reranker.max_length)["input_ids"]
    assert reranker.encode(query, docs) == [list(x) for x in want_ids]
    want = np.asarray(v1_reference.predict([(query, d) for d in docs], batch_size=1, show_progress_bar=False))
    np.testing.assert_allclose(reranker.score(query, docs), want, atol=1e-4)


def test_v1_query_is_tokenized_once_per_request(v1_artifact: Path) -> None:
    """Cost of a huge query over many documents grows with query + documents, not their product."""
    reranker = MxbaiReranker(v1_artifact, providers=["cpu"])
    query = "rivers and cities of europe " * 4000  # 112 KB
    tracemalloc.start()
    started = time.perf_counter()
    rows = reranker.encode(query, ["a"] * 400)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(rows) == 400 and all(len(r) == reranker.max_length for r in rows)
    # Before: 12 s and 1 GB for 100 documents. Generous bounds: this is a guard, not a benchmark.
    assert peak < 200 * 2**20, f"python-side peak {peak / 2**20:.0f} MiB"
    assert elapsed < 20, f"{elapsed:.1f} s"


@pytest.mark.parametrize("max_length", [1, 2, 3, 4])
def test_v1_max_length_below_the_template_is_refused(v1_artifact: Path, max_length: int) -> None:
    with pytest.raises(ArgumentError, match=r"max_length must be at least 5 for a v1 model.*got " + str(max_length)):
        MxbaiReranker(v1_artifact, providers=["cpu"], max_length=max_length)


def test_v1_smallest_max_length_still_truncates_like_cross_encoder(v1_artifact: Path, v1_checkpoint: Path) -> None:
    from sentence_transformers import CrossEncoder

    reference = CrossEncoder(str(v1_checkpoint), device="cpu", max_length=5)
    reranker = MxbaiReranker(v1_artifact, providers=["cpu"], max_length=5)
    docs = ["paris " * 700, "a", "the capital of france is paris"]
    rows = reranker.encode("what is the capital", docs)
    assert all(len(r) <= 5 for r in rows)
    want = reference.predict([("what is the capital", d) for d in docs], batch_size=1, show_progress_bar=False)
    np.testing.assert_allclose(reranker.score("what is the capital", docs), want, atol=1e-4)
