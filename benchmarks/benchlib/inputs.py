"""The benchmarks' inputs: one query, documents of drawn token lengths, and long single documents.

Documents are made from a plain word list so they read like text to any tokenizer, and their token
counts are measured with the checkpoint's own tokenizer, never assumed from word counts. The same
seed gives the same documents in every script (``rerank_bench``, the A/B scripts, ``load_bench``),
so their figures describe the same work.

Example:
    >>> import random
    >>> sentence(random.Random(0))[:16]
    'Biology as 1549 '
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

QUERY = "what are the long term health effects of drinking coffee every day"
MIN_DOC_TOKENS, MAX_DOC_TOKENS = 30, 500
# Beta(1.2, 3.0) on [30, 500]: mode near 70 tokens, mean ~165, a long tail up to 500.
LENGTH_BETA = (1.2, 3.0)

WORDS = (
    "the a of to and in is for on with as by that this from at be are was it or an which not have has "
    "search query document relevance ranking retrieval model score answer question result study report "
    "coffee tea water health heart blood sleep caffeine risk disease cancer liver brain memory effect "
    "people adults children women men patients doctors researchers scientists group trial data evidence "
    "daily morning evening week month year years long short term high low more less most many some "
    "increase decrease reduce improve protect cause linked associated higher lower moderate heavy light "
    "city river mountain ocean forest country history science physics chemistry biology medicine food "
    "energy climate money market company product software code function system network computer phone "
    "paris france capital berlin london tokyo madrid rome europe asia america africa world national "
    "music art film book story language culture school university student teacher work job family home "
    "new old large small good bad best fast slow early late important different common possible recent "
    "according however although because while during after before between among within without about "
    "said found showed suggested reported measured compared observed estimated published reviewed"
).split()
# long_document's vocabulary: one topic, so a 32K-token document stays one plausible text.
LONG_WORDS = ("coffee caffeine health heart sleep study risk cup daily effect blood pressure liver cancer brain "
              "memory research trial people years drink tea water sugar diet habit morning energy").split()


def sentence(rng: random.Random) -> str:
    """One sentence of 6..18 words (sometimes a number), capitalised, with end punctuation."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
    if rng.random() < 0.15:
        words.insert(rng.randrange(len(words)), str(rng.randint(2, 2024)))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", ",", ";", "!", "?"])


def make_inputs(tokenizer_json: Path, n_docs: int, seed: int) -> tuple[str, list[str], list[int]]:
    """One query and ``n_docs`` documents whose token counts (no special tokens) hit drawn targets.

    Returns:
        (query, documents, each document's token count as the tokenizer measures it).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    # Lengths from their own generator, so every tokenizer gets the same length mix for a seed.
    len_rng, rng = random.Random(seed), random.Random(seed + 1)
    targets = [MIN_DOC_TOKENS + round((MAX_DOC_TOKENS - MIN_DOC_TOKENS) * len_rng.betavariate(*LENGTH_BETA))
               for _ in range(n_docs)]
    docs, counts = [], []
    for target in targets:
        text = ""
        while len(tok.encode(text, add_special_tokens=False).ids) < target + 8:
            text = (text + " " + sentence(rng)).strip()
        enc = tok.encode(text, add_special_tokens=False)
        # Cut at the character end of token `target`, then step back until the prefix re-tokenizes
        # to at most `target` tokens (a cut can merge or split a token at the boundary).
        end = enc.offsets[target - 1][1]
        cut = text[:end].rstrip()
        while len(tok.encode(cut, add_special_tokens=False).ids) > target:
            cut = cut[:-1].rstrip()
        docs.append(cut)
        counts.append(len(tok.encode(cut, add_special_tokens=False).ids))
    return QUERY, docs, counts


def long_document(min_tokens: int) -> str:
    """A deterministic text of at least ``min_tokens`` tokens (about one token per word)."""
    words = [LONG_WORDS[(i * 7 + i // 13) % len(LONG_WORDS)] for i in range(min_tokens + 64)]
    return " ".join(words)


def pair_lengths(artifact_dir: Path, query: str, docs: Sequence[str]) -> list[int]:
    """Tokens per (query, document) row exactly as MxbaiReranker feeds them (template, truncation)."""
    from tokenizers import Tokenizer

    from mxbai_integrations.artifact import TOKENIZER_NAME, read_manifest
    from mxbai_integrations.prompt import V1PairEncoder, V2PromptEncoder

    manifest = read_manifest(artifact_dir)
    tok = Tokenizer.from_file(str(Path(artifact_dir) / TOKENIZER_NAME))
    if manifest.family == "v1":
        rows = V1PairEncoder(tok, manifest.max_length).encode(query, docs)
    elif manifest.prompt is not None:
        rows = V2PromptEncoder(tok, manifest.prompt, manifest.max_length).encode(query, docs)
    else:
        raise ValueError(f"{artifact_dir}: a v2 manifest without its prompt")
    return [len(r) for r in rows]
