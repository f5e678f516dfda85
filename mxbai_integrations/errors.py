"""The errors this package raises on purpose, in one place, so callers classify them by type.

Everything deliberate derives from :class:`MxbaiError`. The CLI and the HTTP server decide "your
mistake" (exit 2, HTTP 4xx) or "our failure" (exit 1, HTTP 500) with ``isinstance`` on these
classes, never by where in the stack an exception was raised: a ``ValueError`` from deep inside
numpy or onnxruntime is a bug to report, not a bad argument.

Each class also derives from the built-in exception that callers already catch (``ValueError``
for bad arguments and artifacts, ``TypeError`` for wrong types, ``FileNotFoundError`` for missing
paths, ``ImportError`` for missing extras), so code written against the built-ins keeps working.

Examples:
    >>> from mxbai_integrations.errors import ArgumentError, MxbaiError
    >>> try:
    ...     raise ArgumentError("top_k must be a positive int or None, got 0")
    ... except ValueError as exc:
    ...     isinstance(exc, MxbaiError)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "ArtifactError",
    "ArtifactFileMissingError",
    "ExportError",
    "MissingExtraError",
    "ModelNotFoundError",
    "MxbaiError",
    "NonFiniteScoreError",
    "ProviderError",
]


class MxbaiError(Exception):
    """Base class of every error raised on purpose by mxbai_integrations and onnx_export."""


class ArgumentError(MxbaiError, ValueError):
    """A bad argument from the caller; the message starts with the argument's name."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (also a ``TypeError``, as Python's own checks raise)."""


class ModelNotFoundError(ArgumentError, FileNotFoundError):
    """The ``model`` (or ``source``) the caller named is neither an artifact, a checkpoint nor a hub id we can use."""

    def __init__(self, message: str) -> None:
        # FileNotFoundError(message) keeps the text as str(exc), like the ValueError it also is.
        super().__init__(message)


class MissingExtraError(MxbaiError, ImportError):
    """An optional extra is not installed; the message names the ``pip install`` that adds it."""


class ArtifactError(MxbaiError, ValueError):
    """An artifact directory is missing files, corrupt, or written by an unknown format version.

    The message names the manifest field or the file at fault.
    """


class ArtifactFileMissingError(ArtifactError, FileNotFoundError):
    """A file the manifest lists is not in the artifact directory (also a ``FileNotFoundError``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class ProviderError(MxbaiError, RuntimeError, ValueError):
    """A requested execution provider is not available or did not attach to the session.

    Also a ``ValueError``: asking for a provider this onnxruntime build lacks is a configuration
    mistake, and callers that catch bad arguments as ``ValueError`` should catch it too.
    """


class ExportError(MxbaiError, RuntimeError):
    """An export ran but its result was refused (validation against the reference failed)."""


class NonFiniteScoreError(MxbaiError, RuntimeError):
    """The model returned NaN or inf for some documents: a wrong score is never returned silently.

    A NaN would sort last in ``rank`` and fail every threshold without a word. The known cause is
    overflow in a float16 graph; the fp32 artifact (or the CPU) is the remedy.

    Attributes:
        indices: positions of the affected rows in the caller's order (documents for ``score``).
        dtype: the artifact's dtype.
        provider: the execution provider the session ran on.
    """

    def __init__(self, indices: Sequence[int], *, dtype: str, provider: str) -> None:
        self.indices = [int(i) for i in indices]
        self.dtype = dtype
        self.provider = provider
        shown = self.indices if len(self.indices) <= 20 else [*self.indices[:20], "..."]
        hint = ("; float16 overflow is the usual cause: use the fp32 artifact (dtype='fp32')"
                if dtype == "fp16" else "")
        super().__init__(f"the model returned non-finite scores (NaN or inf) for {len(self.indices)} document(s) "
                         f"at indices {shown} (artifact dtype {dtype}, provider {provider}){hint}")

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments: the default pickling (cls, self.args) could not rebuild it (Ray, workers).
        return (_rebuild_non_finite, (self.indices, self.dtype, self.provider))


def _rebuild_non_finite(indices: list[int], dtype: str, provider: str) -> NonFiniteScoreError:
    return NonFiniteScoreError(indices, dtype=dtype, provider=provider)
