"""Keep the build libraries' chatter out of an export: one progress bar and our own messages.

A first-use export (``MxbaiReranker("./checkpoint")``) printed transformers' "incorrect regex
pattern ... will lead to incorrect tokenization" three times, "`torch_dtype` is deprecated", nested
"Loading checkpoint shards" bars, and with torch's exporter four "torchvision is not installed"
lines. None of it is actionable for the user, and "incorrect tokenization" reads as our bug. What
decides whether an export is right is its validation record (and our own warnings, e.g. a
reference tokenizer that differs from the checkpoint's), so export_model runs inside
``library_output(verbose)``:

- quiet (the default): the loggers of transformers, torch, optimum, onnxscript, huggingface_hub,
  sentence-transformers and mxbai-rerank at ERROR, their progress bars off, and Python warnings
  from anything but ``onnx_export`` / ``mxbai_integrations`` ignored; all restored afterwards;
- verbose (``export_model(verbose=True)``, the CLI's ``-v``): everything as the libraries print it,
  except the one warning shown to be false below, which is replaced by an INFO line of ours.

transformers 4.57.3 - 4.57.6 warn about Mistral's pre-tokenizer regex for every checkpoint whose
config.json was written by those versions, whatever its model type (``_patch_mistral_regex``). For
Qwen2 it is a false positive: Qwen2's own pattern is the right one, and the suggested
``fix_mistral_regex=True`` would replace it with Mistral's and change the ids (case splits,
contractions); tests/test_tokenizer_fidelity.py checks both on the hard texts.

Examples:
    >>> with library_output(verbose=False):  # doctest: +SKIP
    ...     model = AutoModelForCausalLM.from_pretrained(path)   # no bars, no deprecation lines
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator

logger = logging.getLogger(__name__)

LIBRARY_LOGGERS = (
    "transformers", "torch", "optimum", "onnxscript", "onnx_ir", "huggingface_hub", "sentence_transformers",
    "mxbai_rerank", "accelerate", "onnxruntime",
)
# Imported before their levels are set: their import configures their own loggers.
PRELOADED = ("torch", "transformers")
MISTRAL_REGEX_WARNING = "fix_mistral_regex"
OUR_MODULES = r"(onnx_export|mxbai_integrations)(\.|$)"


class _DropMistralRegexWarning(logging.Filter):
    """Drop transformers' Mistral-regex warning (a false positive for the checkpoints exported here)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if MISTRAL_REGEX_WARNING in record.getMessage():
            self.dropped += 1
            return False
        return True


@contextlib.contextmanager
def _progress_bars_off() -> Iterator[None]:
    """transformers' and huggingface_hub's tqdm bars off ("Loading checkpoint shards", downloads)."""
    restore = []
    try:
        from transformers.utils import logging as hf_logging

        if hf_logging.is_progress_bar_enabled():
            hf_logging.disable_progress_bar()
            restore.append(hf_logging.enable_progress_bar)
    except ImportError:
        pass
    try:
        import huggingface_hub.utils as hub_utils

        if not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            restore.append(hub_utils.enable_progress_bars)
    except ImportError:
        pass
    try:
        yield
    finally:
        for undo in restore:
            undo()


def _library_loggers() -> list[logging.Logger]:
    """The libraries' root loggers and every child logger they gave a level of its own.

    torch and transformers set their loggers' levels when they are imported (torch.onnx's explicitly,
    so a level on "torch" alone does not reach it); they are imported first, so those settings are
    in place before ours and ours is not undone halfway through an export.
    """
    for name in PRELOADED:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    out = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    for name, log in list(logging.root.manager.loggerDict.items()):
        if (isinstance(log, logging.Logger) and name.split(".")[0] in LIBRARY_LOGGERS and name not in LIBRARY_LOGGERS
                and log.level != logging.NOTSET):
            out.append(log)
    return out


@contextlib.contextmanager
def library_output(verbose: bool = False) -> Iterator[None]:
    """Run an export with the libraries quiet (``verbose=False``) or as they are (``verbose=True``).

    Args:
        verbose: show the libraries' own logging, warnings and progress bars (all but the Mistral-regex
            false positive).
    """
    drop = _DropMistralRegexWarning()
    tokenization_loggers = [logging.getLogger(name) for name in (
        "transformers.tokenization_utils_base", "transformers.tokenization_utils_fast",
        "transformers.tokenization_utils_tokenizers")]
    for log in tokenization_loggers:
        log.addFilter(drop)
    levels: dict[str, int] = {}
    try:
        if verbose:
            yield
        else:
            for log in _library_loggers():
                levels[log.name] = log.level
                log.setLevel(logging.ERROR)
            with _progress_bars_off(), warnings.catch_warnings():
                warnings.filterwarnings("ignore")
                warnings.filterwarnings("default", module=OUR_MODULES)
                yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        for log in tokenization_loggers:
            log.removeFilter(drop)
        if drop.dropped and verbose:
            logger.info("transformers warned %d time(s) about Mistral's regex (fix_mistral_regex); for Qwen2 "
                        "checkpoints that is a false positive, and the token ids are checked against the "
                        "checkpoint's own tokenizer", drop.dropped)
