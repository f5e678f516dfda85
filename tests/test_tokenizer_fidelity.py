"""Token ids as the checkpoint was trained, whatever transformers is installed.

Runs in both CI environments (transformers 4.57 and 5.x). The oracles are independent of our code:
the checkpoint's own tokenizer.json read by ``tokenizers``, the ``sentencepiece`` library for a
checkpoint that ships only spm.model, Qwen2.5's published tokenizer.json for the BPE conversion,
and the reference libraries (CrossEncoder, MxbaiRerankV2) for scores.

The cross-environment check: with ``MXBAI_CROSS_ENV_DIR`` set, the first environment (transformers
< 5) writes its checkpoints and what its artifacts give (tokenizer.json, ids and scores on the hard
texts) there; the second (transformers >= 5) exports the same checkpoints and compares.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import transformers
from tokenizers import Tokenizer

from mxbai_integrations import MxbaiReranker
from mxbai_integrations.artifact import TOKENIZER_NAME, read_manifest
from onnx_export import export_model
from onnx_export.checkpoint_tokenizer import convert_qwen2_bpe, convert_sentencepiece, locate
from onnx_export.hard_texts import HARD_QUERY, HARD_TEXTS, scored_texts
from onnx_export.tokenizer_check import checkpoint_rows

TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
CROSS_ENV = "MXBAI_CROSS_ENV_DIR"
TEXTS = [text for _, text in HARD_TEXTS]
# The issue's table: texts where transformers 5's rebuilt DeBERTa-v2 pipeline gave other ids.
ISSUE_TABLE = ["ﬁnance report", "Ｔｈｅ ｗａｒ ｂｅｇａｎ ｉｎ １６４８．", "x² + y²", "  ", ""]


def _tokenizer_check(manifest) -> str:
    """The tokenizer check's line: the record's own field where this mxbai_integrations has it, else created_with."""
    typed = getattr(manifest.validation, "tokenizer_check", None)
    return typed.summary() if typed is not None else manifest.created_with["tokenizer_check"]


def _own(checkpoint: Path) -> Tokenizer:
    return Tokenizer.from_file(str(checkpoint / TOKENIZER_NAME))


def _realistic_texts(n: int, seed: int = 0) -> list[str]:
    """Mixed-script sentences with compatibility forms, NFD input and odd whitespace."""
    words = ["Crème", "brûlée", "Tiếng", "Việt", "naïve", "Ångström", "façade", "résumé", "Straße", "Đà Nẵng",
             "ｶﾞｷﾞｸﾞ", "ﾊﾟﾝ", "ﾃﾞｰﾀ", "ﬁle", "ﬂoor", "x²", "H₂O", "Ｔｏｋｙｏ", "１２３", "①②", "㎏", "№", "東京",
             "한국어", "ภาษา", "👍🏽", "e\u0301", "n\u0303", "a\u0308\u0301", "\u3000", "\t", "\u00a0",
             "zero\u200bwidth", "Ǆ", "ﬀ", "™", "…", "Ⅻ", "½", "the", "capital", "of", "France", "is", "Paris"]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        out.append(unicodedata.normalize("NFD", text) if rng.random() < 0.3 else text)
    return out


# -- 1. the artifact's tokenizer.json is the checkpoint's file ----------------------------------------------
@pytest.mark.parametrize("family", ["v1", "v2"])
def test_artifact_tokenizer_is_the_checkpoints_file_byte_for_byte(family, request):
    checkpoint = request.getfixturevalue(f"{family}_checkpoint")
    artifact = request.getfixturevalue(f"{family}_artifact")
    assert (artifact / TOKENIZER_NAME).read_bytes() == (checkpoint / TOKENIZER_NAME).read_bytes()
    assert "copied byte for byte" in read_manifest(artifact).created_with["tokenizer"]


def test_v1_artifact_follows_the_checkpoint_on_the_issue_table(v1_artifact, v1_checkpoint):
    """The issue's table after the fix: the artifact gives the checkpoint's ids on every row."""
    own = _own(v1_checkpoint)
    reranker = MxbaiReranker(v1_artifact)
    rows = reranker.encode("q", ISSUE_TABLE)
    expected = [enc.ids for enc in own.encode_batch([("q", d) for d in ISSUE_TABLE])]
    assert rows == expected
    assert own.encode("ﬁnance report", add_special_tokens=False).tokens[:3] == ["▁", "f", "in"]  # NFKC: "fi"
    assert rows[3] == expected[3] and len(rows[3]) == len(rows[4]) + 2  # "  " keeps its two ▁ pieces


def _make_hub_cache(root: Path, repo: str, snapshots: dict[str, Path], main: str) -> Path:
    """A Hugging Face cache holding ``repo`` at the given commits (files copied into each snapshot)."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    for commit, checkpoint in snapshots.items():
        shutil.copytree(checkpoint, repo_dir / "snapshots" / commit)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(main)
    return root


def test_hub_tokenizer_comes_from_the_requested_revision(v1_checkpoint, tmp_path, monkeypatch):
    """Offline (HF_HUB_OFFLINE=1), from the cache, at the revision asked for; never re-serialized."""
    import huggingface_hub.constants as hub_constants

    other = shutil.copytree(v1_checkpoint, tmp_path / "other")
    data = json.loads((other / TOKENIZER_NAME).read_text(encoding="utf-8"))
    data["normalizer"] = None  # a different pipeline at the older revision
    (other / TOKENIZER_NAME).write_text(json.dumps(data), encoding="utf-8")
    old, new = "a" * 40, "b" * 40
    cache = _make_hub_cache(tmp_path / "hub", "acme/tiny-v1", {old: other, new: v1_checkpoint}, main=new)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    latest = locate("acme/tiny-v1", family="v1")
    pinned = locate("acme/tiny-v1", family="v1", revision=old)
    assert latest.path.read_bytes() == (v1_checkpoint / TOKENIZER_NAME).read_bytes()
    assert pinned.path.read_bytes() == (other / TOKENIZER_NAME).read_bytes()
    out = tmp_path / "art"
    pinned.write(out)
    assert out.read_bytes() == (other / TOKENIZER_NAME).read_bytes()
    with pytest.raises(FileNotFoundError, match="no usable tokenizer"):
        locate("acme/not-cached", family="v1")


# -- 1b. checkpoints without tokenizer.json: conversions checked against the original tokenizers ------------
@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from random_models import train_sentencepiece

    return train_sentencepiece(tmp_path_factory.mktemp("spm") / "spm.model")


def test_sentencepiece_conversion_gives_sentencepiece_ids(spm_model):
    """DeBERTa-v3 style spm.model (nmt_nfkc) -> tokenizer.json: the same ids as the sentencepiece library."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    tok = convert_sentencepiece(spm_model, {})
    texts = TEXTS + _realistic_texts(2000)
    differ = [t for t in texts if tok.encode(t, add_special_tokens=False).ids != sp.encode(t)]
    assert differ == []
    # The pair template of DeBERTa-v3: [CLS] A [SEP] B [SEP].
    for query, doc in [("q", "ﬁnance report"), (HARD_QUERY, ""), ("x² + y²", "  ")]:
        assert tok.encode(query, doc).ids == [1, *sp.encode(query), 2, *sp.encode(doc), 2]
    # transformers' own converter (Strip before the charsmap, tokenizers' Precompiled alone) does not
    # get there: the reason this conversion exists.
    if not TRANSFORMERS_5:
        from transformers import DebertaV2Tokenizer
        from transformers.convert_slow_tokenizer import DebertaV2Converter

        theirs = DebertaV2Converter(DebertaV2Tokenizer(vocab_file=str(spm_model))).converted()
        assert any(theirs.encode(t, add_special_tokens=False).ids != sp.encode(t) for t in TEXTS)


def test_qwen2_bpe_conversion_gives_the_published_ids():
    """vocab.json + merges.txt -> the byte-level BPE tokenizer Qwen2.5 ships as tokenizer.json."""
    from random_models import qwen_tokenizer_files

    files = qwen_tokenizer_files()
    config = json.loads((files / "tokenizer_config.json").read_text(encoding="utf-8"))
    converted = convert_qwen2_bpe(files / "vocab.json", files / "merges.txt", config)
    published = Tokenizer.from_file(str(files / "tokenizer.json"))
    texts = [*TEXTS, *_realistic_texts(500), "<|im_start|>user\nhi<|im_end|>", "don't I'LL we've"]
    for text in texts:
        assert converted.encode(text, add_special_tokens=False).ids == published.encode(
            text, add_special_tokens=False).ids, text
    assert converted.get_vocab_size() == published.get_vocab_size()


@pytest.fixture(scope="module")
def v1_spm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from random_models import build_v1_spm_checkpoint

    return build_v1_spm_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-v1-spm")


def test_spm_only_checkpoint_exports_with_sentencepiece_ids(v1_spm_checkpoint, tmp_path, caplog):
    """No tokenizer.json: the artifact gets sentencepiece's ids; transformers' own conversion (4.57:
    Strip before the charsmap; 5.24: NFC and whitespace folding) differs, which the export says once."""
    import sentencepiece as spm

    assert not (v1_spm_checkpoint / TOKENIZER_NAME).exists()
    with caplog.at_level(logging.WARNING, logger="onnx_export"):
        artifact = export_model(v1_spm_checkpoint, tmp_path / "art", progress=False)
    manifest = read_manifest(artifact)
    assert manifest.valid, manifest.validation.summary()
    assert manifest.created_with["tokenizer"].startswith("converted from the checkpoint's spm.model")
    sp = spm.SentencePieceProcessor(model_file=str(v1_spm_checkpoint / "spm.model"))
    docs = [t for t in TEXTS if len(sp.encode(t)) < 200]
    rows = MxbaiReranker(artifact).encode(HARD_QUERY, docs)
    assert rows == [[1, *sp.encode(HARD_QUERY), 2, *sp.encode(d), 2] for d in docs]
    warnings = [r.getMessage() for r in caplog.records if "tokenizes differently" in r.getMessage()]
    assert len(warnings) == 1 and "the reference was scored on the checkpoint's token ids" in warnings[0]
    # The reference is fed the checkpoint's ids exactly where the installed transformers' own conversion of
    # spm.model tokenizes a scored text differently from sentencepiece (that depends on the version: 5.24
    # differed on many texts, 5.25 and 4.57 on NFD and bidi texts only), decided here by the two libraries.
    from transformers import AutoTokenizer

    from onnx_export.validate import CASES

    hf = AutoTokenizer.from_pretrained(str(v1_spm_checkpoint))
    texts = {t for case in CASES for t in (case.query, *case.documents)}
    differs = {t for t in texts if hf(t, add_special_tokens=False)["input_ids"] != sp.encode(t)}
    fed = "fed the checkpoint's token ids" in manifest.validation.reference
    assert fed or not {t for t in differs if len(sp.encode(t)) < 100}, "a short scored text differs: not fed"
    assert differs or not fed, "fed although no scored text tokenizes differently"


# -- 2. validation: the checkpoint's ids are the oracle; the reference's drift is named once ------------------
def _drifted_reference(family: str, source: str, max_length: int, revision: str | None):
    """The reference library with transformers 5's rebuilt DeBERTa-v2 normalizer (NFC, whitespace folded)."""
    from tokenizers import Regex, normalizers

    from onnx_export.validate import LibraryReference

    ref = LibraryReference(family, source, max_length, revision)
    ref.tokenizer.backend_tokenizer.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "), normalizers.NFC(), normalizers.Strip(left=False)])
    return ref


def test_reference_drift_is_warned_once_and_scored_on_the_checkpoints_ids(v1_checkpoint, tmp_path, caplog):
    """The issue's situation (transformers 5's DeBERTa-v2 tokenizer), here on either transformers.

    On transformers 5 the library's own tokenizer drifts; on 4.57 the same rebuilt normalizer is put
    into the reference library's tokenizer. The artifact must follow the checkpoint, the export warn
    in one line naming the first differing text, and the validation still pass (on the checkpoint's ids).
    """
    from onnx_export import validate

    def drift_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "tokenizes differently" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="onnx_export"):
        artifact = export_model(v1_checkpoint, tmp_path / "art", progress=False)
    at_export = drift_lines()
    manifest = read_manifest(artifact)
    if TRANSFORMERS_5:
        assert len(at_export) == 1 and "differs on" in _tokenizer_check(manifest)
    else:
        assert at_export == [] and "; so do the reference's" in _tokenizer_check(manifest)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="onnx_export"):
        outcome = validate.run_validation(artifact, manifest, str(v1_checkpoint),
                                          reference=None if TRANSFORMERS_5 else _drifted_reference)
    lines = drift_lines()
    assert len(lines) == 1 and "\n" not in lines[0]
    record, check = outcome.record, outcome.tokenizer_check
    assert "first: ligature-fi 'ﬁnance report'" in lines[-1]
    assert check.passed and check.first_difference.startswith("ligature-fi")
    assert {"ligature-fi", "full-width", "superscripts", "only-spaces"} <= set(check.reference_differs)
    assert record.passed, record.summary()
    assert record.token_ids_equal and "fed the checkpoint's token ids in" in record.reference
    assert "hard-texts" in record.reference
    # The artifact's ids are the checkpoint's, not the drifted reference's.
    rows = MxbaiReranker(artifact).encode("q", ISSUE_TABLE)
    assert rows == [e.ids for e in _own(v1_checkpoint).encode_batch([("q", d) for d in ISSUE_TABLE])]


def test_scores_on_fed_ids_equal_the_reference_librarys_own(v1_checkpoint, v2_checkpoint):
    """Feeding the reference model ids must be the library's own computation when the ids agree."""
    from onnx_export.validate import Case, LibraryReference

    for family, checkpoint in (("v1", v1_checkpoint), ("v2", v2_checkpoint)):
        ref = LibraryReference(family, str(checkpoint), 128, None)
        case = Case("t", "What is the capital of France?", ["Paris is the capital of France.", "Bananas.", "a b"])
        rows = ref.ids(case)
        for padded in (False, True):
            np.testing.assert_allclose(ref.scores_for_ids(rows, padded=padded), ref.scores(case, padded=padded),
                                       rtol=0, atol=1e-6)


# -- 3. v2: the Qwen2 tokenizer under this transformers, and the reference's piecewise prompt ----------------
def test_qwen2_tokenizer_of_this_transformers_equals_the_checkpoints(v2_checkpoint):
    """transformers 4.57 and 5.x (this file runs in both) tokenize the hard texts as the checkpoint does."""
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(v2_checkpoint)
    own = _own(v2_checkpoint)
    for text in [*TEXTS, *_realistic_texts(300)]:
        assert theirs(text, add_special_tokens=False)["input_ids"] == own.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("instruction", [None, "Find the capital."])
def test_mxbai_rerank_v2_prompt_equals_the_checkpoints_ids(v2_checkpoint, instruction):
    """mxbai_rerank 0.1.6's prepare_inputs (prepare_for_model restored on transformers 5) gives the ids the
    checkpoint's own tokenizer gives with the same prompt rules, on the hard texts, truncation included."""
    import torch
    from mxbai_rerank import MxbaiRerankV2

    from onnx_export.reference_compat import ensure_prepare_for_model

    for max_length in (48, 256):
        ref = MxbaiRerankV2(str(v2_checkpoint), device="cpu", torch_dtype=torch.float32, max_length=max_length)
        ensure_prepare_for_model(ref.tokenizer)
        own = _own(v2_checkpoint)
        for query, docs in ((HARD_QUERY, TEXTS), ("x² ﬁnance " * 20, scored_texts())):
            batch = ref.prepare_inputs([query] * len(docs), docs, instruction=instruction)
            rows = [ids[m.bool()].tolist() for ids, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)]
            assert rows == checkpoint_rows("v2", own, query, docs, max_length=max_length, model_max_length=32768,
                                           instruction=instruction)


# -- 5. transformers 4.57's Mistral-regex warning: a false positive for Qwen2 ---------------------------------
@pytest.mark.skipif(TRANSFORMERS_5, reason="transformers 5 warns only for Mistral model types")
def test_mistral_regex_warning_is_a_false_positive_for_qwen2(v2_checkpoint):
    """The "fix" it asks for would replace Qwen2's pre-tokenizer with Mistral's and change the ids."""
    from transformers import AutoTokenizer

    own = _own(v2_checkpoint)
    plain = AutoTokenizer.from_pretrained(v2_checkpoint)
    fixed = AutoTokenizer.from_pretrained(v2_checkpoint, fix_mistral_regex=True)
    texts = [*TEXTS, "HTTPServerError don't I'LL"]
    expected = [own.encode(t, add_special_tokens=False).ids for t in texts]
    assert [plain(t, add_special_tokens=False)["input_ids"] for t in texts] == expected
    changed = [t for t, e in zip(texts, expected, strict=True) if fixed(t, add_special_tokens=False)["input_ids"] != e]
    assert "mixed-case-run" in {name for name, text in HARD_TEXTS if text in changed}


# -- 4. the same checkpoints exported on transformers 4.57 and on 5.x ----------------------------------------
def _fingerprint(artifact: Path) -> dict:
    reranker = MxbaiReranker(artifact)
    docs = [t for t in TEXTS if t.strip()]
    return {
        "tokenizer_json": (artifact / TOKENIZER_NAME).read_text(encoding="utf-8"),
        "doc_ids": reranker.encode(HARD_QUERY, TEXTS),
        "query_ids": [reranker.encode(t, ["A short document."])[0] for t in docs],
        "scores": [float(x) for x in reranker.score(HARD_QUERY, TEXTS, batch_size=1)],
        "transformers": transformers.__version__,
        "exporter": read_manifest(artifact).created_with["exporter"],
    }


@pytest.mark.skipif(CROSS_ENV not in os.environ, reason=f"{CROSS_ENV} is not set: the cross-environment check "
                                                        "runs in CI (.ci/run), environment 1 then 2")
@pytest.mark.parametrize("family", ["v1", "v2", "v1-spm"])
def test_same_checkpoint_same_artifact_across_transformers(family, request, tmp_path):
    """Env 1 (transformers < 5) writes checkpoint + fingerprint; env 2 (>= 5) re-exports and compares."""
    root = Path(os.environ[CROSS_ENV]) / family
    if not TRANSFORMERS_5:
        checkpoint = request.getfixturevalue({"v1": "v1_checkpoint", "v2": "v2_checkpoint",
                                              "v1-spm": "v1_spm_checkpoint"}[family])
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(checkpoint, root / "checkpoint")
        artifact = export_model(root / "checkpoint", tmp_path / "art", progress=False)
        (root / "fingerprint.json").write_text(json.dumps(_fingerprint(artifact), ensure_ascii=False),
                                               encoding="utf-8")
        return
    if not (root / "fingerprint.json").is_file():
        pytest.fail(f"{CROSS_ENV}={os.environ[CROSS_ENV]} has no {family} fingerprint: run environment 1 first")
    before = json.loads((root / "fingerprint.json").read_text(encoding="utf-8"))
    artifact = export_model(root / "checkpoint", tmp_path / "art", progress=False)
    after = _fingerprint(artifact)
    if family == "v1-spm":
        # Converted here by this tokenizers version: equivalent (same ids), not necessarily the same bytes.
        assert json.loads(after["tokenizer_json"])["normalizer"] == json.loads(before["tokenizer_json"])["normalizer"]
    else:
        assert after["tokenizer_json"] == before["tokenizer_json"]  # the checkpoint's bytes in both
    assert after["doc_ids"] == before["doc_ids"] and after["query_ids"] == before["query_ids"]
    diff = np.abs(np.asarray(after["scores"]) - np.asarray(before["scores"])).max()
    assert diff <= 1e-5, (f"scores differ by {diff:.3g} between transformers {before['transformers']} "
                          f"({before['exporter']}) and {after['transformers']} ({after['exporter']})")
