"""The checkpoint's own tokenizer, as published: what the artifact's ``tokenizer.json`` must be.

transformers 5 rebuilds a tokenizer's pipeline from its class instead of taking the checkpoint's
``tokenizer.json`` (for DeBERTa-v2 it replaces the NFKC / sentencepiece normalizer with NFC and
whitespace folding), so saving ``AutoTokenizer(...).backend_tokenizer`` would put whatever the
installed transformers rebuilt into the artifact. Here the artifact gets the checkpoint's file
itself, byte for byte: from the local directory, or from the hub repository at the requested
revision through ``huggingface_hub`` (which honours ``HF_HUB_OFFLINE``). Its truncation and padding
sections stay as published; the run time switches both off itself (``mxbai_integrations.prompt``).

A checkpoint without a ``tokenizer.json`` gets one built the way the model was trained:

- v1 (DeBERTa-v3, ``spm.model``): sentencepiece Unigram with the model's own precompiled
  normalization charsmap (``nmt_nfkc``) as tokenizers' ``Precompiled`` normalizer, sentencepiece's
  whitespace rules (runs of spaces folded, ends stripped), ``Metaspace`` with the dummy prefix, and
  the ``[CLS] A [SEP] B [SEP]`` template. tests/test_tokenizer_fidelity.py checks its ids against
  the ``sentencepiece`` library's own.
- v2 (Qwen2, ``vocab.json`` + ``merges.txt``): byte-level BPE with Qwen2's pre-tokenization regex and
  NFC, and the added tokens of ``tokenizer_config.json``; checked against the Qwen2.5 tokenizer.json.

Examples:
    >>> ck = locate("./mxbai-rerank-base-v1", family="v1")  # doctest: +SKIP
    >>> ck.describe()  # doctest: +SKIP
    "the checkpoint's tokenizer.json (sha256 3f1c...), copied byte for byte"
    >>> ck.write(Path("artifact/tokenizer.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mxbai_integrations.artifact import TOKENIZER_NAME, sha256_file
from mxbai_integrations.errors import ExportError, ModelNotFoundError

logger = logging.getLogger(__name__)

SENTENCEPIECE_NAMES = ("spm.model", "sentencepiece.bpe.model", "tokenizer.model")
BPE_NAMES = ("vocab.json", "merges.txt")
CONFIG_NAME = "tokenizer_config.json"
SPECIAL_TOKENS_NAME = "special_tokens_map.json"  # where older checkpoints name pad/cls/sep
# Qwen2's pre-tokenization pattern (transformers' Qwen2 converter and every Qwen2 tokenizer.json).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_UNIGRAM = 1  # sentencepiece TrainerSpec.ModelType
_CONTROL, _USER_DEFINED = 3, 4  # sentencepiece ModelProto.SentencePiece.Type

Kind = Literal["tokenizer.json", "sentencepiece", "bpe"]


@dataclass(frozen=True)
class CheckpointTokenizer:
    """Where a checkpoint's tokenizer lives, and what kind it is.

    Attributes:
        kind: ``tokenizer.json`` (copied as is), ``sentencepiece`` (v1 spm.model, converted) or
            ``bpe`` (v2 vocab.json + merges.txt, converted).
        files: the checkpoint files it is made from (local paths, hub files resolved into the cache).
        config: the checkpoint's tokenizer_config.json over its special_tokens_map.json ({} when it has neither).
    """

    kind: Kind
    files: tuple[Path, ...]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.files[0]

    def describe(self) -> str:
        """One line for the manifest: where the artifact's tokenizer.json came from."""
        if self.kind == "tokenizer.json":
            return f"the checkpoint's tokenizer.json (sha256 {sha256_file(self.path)[:16]}), copied byte for byte"
        if self.kind == "sentencepiece":
            return (f"converted from the checkpoint's {self.path.name} (sha256 {sha256_file(self.path)[:16]}): "
                    "sentencepiece Unigram with its precompiled normalizer, Metaspace, [CLS] A [SEP] B [SEP]")
        return ("converted from the checkpoint's vocab.json + merges.txt: byte-level BPE with Qwen2's "
                "pre-tokenizer and NFC")

    def load(self) -> Any:
        """The checkpoint's tokenizer as a ``tokenizers.Tokenizer`` (the file, or the conversion)."""
        from tokenizers import Tokenizer

        if self.kind == "tokenizer.json":
            return Tokenizer.from_file(str(self.path))
        if self.kind == "sentencepiece":
            return convert_sentencepiece(self.path, self.config)
        return convert_qwen2_bpe(self.files[0], self.files[1], self.config)

    def write(self, dst: Path) -> None:
        """Write the artifact's tokenizer.json: the checkpoint's own bytes, or the conversion."""
        if self.kind == "tokenizer.json":
            shutil.copyfile(self.path, dst)
        else:
            self.load().save(str(dst))


def _read_config(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"source: {str(path)!r} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _hub_file(repo: str, name: str, revision: str | None) -> Path | None:
    """The file from the hub repo at ``revision`` (or the cache when offline); None when it has none."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id=repo, filename=name, revision=revision))
    except EntryNotFoundError:
        return None
    except LocalEntryNotFoundError:
        # Offline (HF_HUB_OFFLINE=1) and not in the cache, or the hub unreachable: cannot tell
        # whether the repo has the file, so look for the other kinds before giving up.
        return None


def locate(source: str, *, family: str, revision: str | None = None) -> CheckpointTokenizer:
    """Find the checkpoint's tokenizer: its tokenizer.json, else the files to convert.

    Args:
        source: a local checkpoint directory or a hub repo id.
        family: ``v1`` (a sentencepiece model can stand in) or ``v2`` (vocab.json + merges.txt can).
        revision: the hub revision (ignored for a local directory).

    Raises:
        ModelNotFoundError: the checkpoint has no tokenizer this exporter can use.
    """
    local = Path(source)
    if local.is_dir():
        def get(name: str) -> Path | None:
            path = local / name
            return path if path.is_file() else None
    else:
        def get(name: str) -> Path | None:
            return _hub_file(source, name, revision)

    def config() -> dict[str, Any]:
        return {**_read_config(get(SPECIAL_TOKENS_NAME)), **_read_config(get(CONFIG_NAME))}

    tokenizer_json = get(TOKENIZER_NAME)
    if tokenizer_json is not None:
        return CheckpointTokenizer("tokenizer.json", (tokenizer_json,), config())
    if family == "v1":
        for name in SENTENCEPIECE_NAMES:
            spm = get(name)
            if spm is not None:
                return CheckpointTokenizer("sentencepiece", (spm,), config())
    else:
        vocab, merges = get(BPE_NAMES[0]), get(BPE_NAMES[1])
        if vocab is not None and merges is not None:
            return CheckpointTokenizer("bpe", (vocab, merges), config())
    wanted = f"{TOKENIZER_NAME} or {' / '.join(SENTENCEPIECE_NAMES if family == 'v1' else BPE_NAMES)}"
    hint = "" if local.is_dir() else " (offline with HF_HUB_OFFLINE=1: is the repo in the Hugging Face cache?)"
    raise ModelNotFoundError(f"source: {source!r} has no usable tokenizer ({wanted}){hint}")


def _token_content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _add_config_tokens(tokenizer: Any, config: dict[str, Any]) -> None:
    """Add tokenizer_config.json's added tokens beyond the model vocabulary, at their declared ids."""
    from tokenizers import AddedToken

    decoder = config.get("added_tokens_decoder") or {}
    for key in sorted(decoder, key=int):
        spec = decoder[key]
        content = _token_content(spec)
        if content is None or tokenizer.token_to_id(content) is not None:
            continue
        token = AddedToken(content, single_word=bool(spec.get("single_word", False)),
                           lstrip=bool(spec.get("lstrip", False)), rstrip=bool(spec.get("rstrip", False)),
                           normalized=bool(spec.get("normalized", False)), special=bool(spec.get("special", True)))
        if token.special:
            tokenizer.add_special_tokens([token])
        else:
            tokenizer.add_tokens([token])
        if tokenizer.token_to_id(content) != int(key):
            raise ExportError(f"source: tokenizer_config.json declares {content!r} as id {key}, but the vocabulary "
                              f"puts it at {tokenizer.token_to_id(content)}; cannot rebuild this tokenizer")


def convert_sentencepiece(model_file: Path, config: dict[str, Any] | None = None) -> Any:
    """DeBERTa-v3's sentencepiece model as a ``tokenizers.Tokenizer`` that gives sentencepiece's ids.

    Follows sentencepiece's own normalizer (normalizer.cc) rather than transformers' converter, which
    strips before the charsmap (so a leading tab or ideographic space, mapped to a space by the
    charsmap, survives as a token there but not in sentencepiece).

    Raises:
        ExportError: a sentencepiece model that is not Unigram (DeBERTa-v3's is).
    """
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    config = config or {}
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    trainer, spec = proto.trainer_spec, proto.normalizer_spec
    if trainer.model_type != _UNIGRAM:
        raise ExportError(f"source: {Path(model_file).name} is a sentencepiece model of type {trainer.model_type}; "
                          "only Unigram models (DeBERTa-v3) are converted")
    tokenizer = Tokenizer(models.Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=trainer.unk_id,
                                         byte_fallback=trainer.byte_fallback))
    steps: list[Any] = []
    if spec.precompiled_charsmap:
        # NFKC first: tokenizers' Precompiled maps a grapheme of several code points differently from
        # sentencepiece (NFD "e + U+0302 + U+0301" loses the acute instead of becoming U+1EBF; half-width
        # "ｶﾞ" stays two characters). The charsmap is nmt_nfkc, so NFKC before it changes nothing that
        # sentencepiece would not; with it the ids equal sentencepiece's on the hard texts and on
        # realistic NFD and mixed-script text. They can still differ on stacked combining marks that
        # sentencepiece's trie leaves uncomposed and NFKC composes (tests/test_tokenizer_fidelity.py).
        steps += [normalizers.NFKC(), normalizers.Precompiled(spec.precompiled_charsmap)]
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex("^ | $"), "")]
    if steps:
        tokenizer.normalizer = normalizers.Sequence(steps)
    prepend = "always" if spec.add_dummy_prefix else "never"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend,
                                                       split=trainer.split_by_whitespace)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=prepend,
                                           split=trainer.split_by_whitespace)
    specials = [(i, p.piece, p.type == _CONTROL) for i, p in enumerate(proto.pieces) if p.type in (_CONTROL,
                                                                                                    _USER_DEFINED)]
    tokenizer.add_special_tokens([AddedToken(piece, normalized=False, special=True)
                                  for _, piece, special in specials if special])
    tokenizer.add_tokens([AddedToken(piece, normalized=False, special=False)
                          for _, piece, special in specials if not special])
    _add_config_tokens(tokenizer, config)
    cls = _token_content(config.get("cls_token")) or "[CLS]"
    sep = _token_content(config.get("sep_token")) or "[SEP]"
    cls_id, sep_id = tokenizer.token_to_id(cls), tokenizer.token_to_id(sep)
    if cls_id is None or sep_id is None:
        raise ExportError(f"source: {Path(model_file).name} has no {cls!r} / {sep!r} pieces for the pair template")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, cls_id), (sep, sep_id)],
    )
    return tokenizer


def convert_qwen2_bpe(vocab_file: Path, merges_file: Path, config: dict[str, Any] | None = None) -> Any:
    """A Qwen2 checkpoint's vocab.json + merges.txt as the byte-level BPE tokenizer Qwen2 ships."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = json.loads(Path(vocab_file).read_text(encoding="utf-8"))
    merges = []
    for line in Path(merges_file).read_text(encoding="utf-8").splitlines():
        if line.startswith("#version") or not line.strip():
            continue
        left, right = line.split(" ")
        merges.append((left, right))
    tokenizer = Tokenizer(models.BPE(vocab, merges, unk_token=None, continuing_subword_prefix="",
                                     end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    _add_config_tokens(tokenizer, config or {})
    return tokenizer
