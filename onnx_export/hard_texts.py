"""Texts on which tokenizer pipelines that agree on ordinary prose still disagree.

Every export checks the artifact's token ids on these texts against the checkpoint's own tokenizer
and against the reference library's (``validate.py``, ``tokenizer_check.py``). They are chosen to
exercise each stage where two pipelines can drift apart: Unicode normalization (compatibility
characters, ligatures, full-width forms, super- and subscripts, combining marks, decomposed input),
whitespace handling (tabs, newlines, runs of spaces, whitespace-only and empty documents), scripts
without spaces (CJK, Thai), emoji sequences, control and invisible characters, and words far longer
than any vocabulary entry. transformers 5 rebuilds DeBERTa-v2's normalizer from the class (NFC and
whitespace folding instead of the checkpoint's NFKC / sentencepiece charsmap): the first groups are
where that shows.

Examples:
    >>> from onnx_export.hard_texts import HARD_TEXTS
    >>> HARD_TEXTS[0]
    ('ligature-fi', 'ﬁnance report')
"""

from __future__ import annotations

import unicodedata

# (name, text). Names are stable: validation records and warnings cite them.
HARD_TEXTS: tuple[tuple[str, str], ...] = (
    # NFKC compatibility mappings: what a plain NFC pipeline leaves unknown.
    ("ligature-fi", "ﬁnance report"),
    ("ligatures", "ﬂow ﬀ ﬃ ﬄ ﬆ"),
    ("full-width", "Ｔｈｅ ｗａｒ ｂｅｇａｎ ｉｎ １６４８．"),
    ("full-width-punct", "ＡＢＣ！？（テスト）"),
    ("superscripts", "x² + y² = z²"),
    ("subscripts", "H₂O and CO₂"),
    ("exponent", "10⁻³ m³"),
    ("roman-numerals", "Chapter Ⅻ, Ⅳ"),
    ("units", "5 ㎏ in 1 ㎡, № 7"),
    ("fraction", "½ cup, ¾ done"),
    ("ideographic-space", "\u3000full\u3000width\u3000space"),
    ("nbsp", "non\u00a0breaking\u00a0space"),
    # Combining marks and decomposed input.
    ("combining-acute", "cafe\u0301 re\u0301sume\u0301"),
    ("nfd-french", unicodedata.normalize("NFD", "Crème brûlée à la française")),
    ("nfd-vietnamese", unicodedata.normalize("NFD", "Tiếng Việt có dấu")),
    ("stacked-marks", "Z\u0324\u0354\u0367\u0311a\u0308\u0356\u032dl\u036e\u0312g\u030co"),
    # Scripts.
    ("cjk", "東京は日本の首都です。"),
    ("hangul", "한국어 텍스트 처리"),
    ("thai", "ภาษาไทยไม่มีช่องว่าง"),
    ("arabic", "اللغة العربية من اليمين"),
    ("devanagari", "हिन्दी भाषा"),
    # Emoji sequences (ZWJ, skin tone, flags, keycaps).
    ("emoji", "family 👨\u200d👩\u200d👧 thumbs 👍🏽 flag 🇫🇷 keycap 1\ufe0f\u20e3"),
    # Control and invisible characters.
    ("control", "bell\x07 escape\x1b null\x00 end"),
    ("zero-width", "zero\u200bwidth\u200cjoiner\u200d soft\u00adhyphen"),
    ("bidi", "bidi \u202eoverride\u202c mark\u200f"),
    ("bom", "\ufeffbyte order mark"),
    # Whitespace.
    ("tabs-newlines", "a\tb\n\nc   d"),
    ("crlf", "line one\r\nline two\r\n"),
    ("padded", "   leading and trailing   "),
    ("space-run", "word" + " " * 20 + "word"),
    ("only-space", " "),
    ("only-spaces", "  "),
    ("only-newline", "\n"),
    ("only-tab", "\t"),
    ("only-ideographic-space", "\u3000"),
    ("empty", ""),
    # Quotes some converters rewrite.
    ("quotes", "``quoted'' and \u201ccurly\u201d and 'single'"),
    # Long words and unbroken strings.
    ("long-word", "Donaudampfschifffahrtsgesellschaftskapitänswitwe" * 4),
    ("long-letter-run", "a" * 300),
    ("long-url", "https://example.com/" + "path/" * 40 + "?q=" + "x" * 100),
    ("long-digits", "0123456789" * 30),
    ("mixed-case-run", "HTTPServerErrorXMLParserJSONResponse don't I'll we're"),
)

# Short texts that a scored validation case can afford (the ids check covers every text above).
SCORED_NAMES: tuple[str, ...] = (
    "ligature-fi", "full-width", "superscripts", "nfd-french", "cjk", "emoji", "tabs-newlines", "only-spaces",
    "empty", "control",
)

HARD_QUERY = "What does the document say?"


def hard_text(name: str) -> str:
    """The text called ``name`` in :data:`HARD_TEXTS`."""
    for key, text in HARD_TEXTS:
        if key == name:
            return text
    raise KeyError(name)


def scored_texts() -> list[str]:
    """The short hard texts scored in every validation (``SCORED_NAMES``, in that order)."""
    return [hard_text(name) for name in SCORED_NAMES]
