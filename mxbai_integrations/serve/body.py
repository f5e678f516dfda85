"""From request bytes to a validated request model, or one ``ServeError`` naming the field at fault.

The body is parsed and validated in one strict pass (pydantic's JSON parser, in Rust): UTF-8 only,
no lone surrogates (``"\\ud800"`` cannot reach the tokenizer), at most 200 levels of nesting, and
no NaN/Infinity literals. Every failure is a 422 naming ``body`` or the field; a value beyond a
limit of the app's request models (``maxItems``, ``maxLength``) is a 413 naming the field.

Examples:
    >>> from mxbai_integrations.serve.config import ServeLimits
    >>> from mxbai_integrations.serve.schemas import request_models
    >>> cohere, _ = request_models(ServeLimits(max_documents=2))
    >>> parse_body(b'{"query": "q", "documents": ["a", "b", "c"]}', cohere)
    Traceback (most recent call last):
    ...
    mxbai_integrations.serve.errors.ServeError: documents: 3 documents, at most 2 per request
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mxbai_integrations.serve.errors import ServeError

__all__ = ["field_name", "parse_body", "validation_error"]

M = TypeVar("M", bound=BaseModel)
# What one item of a list is called, and what a length limit is counted per.
_ITEMS = {"documents": "documents", "texts": "texts"}
_PER = {"documents": "per document", "texts": "per text", "query": "per query", "instruction": "per instruction"}


def parse_body(raw: bytes, model: type[M]) -> M:
    """Parse and validate ``raw`` as ``model`` (strict JSON); raise ServeError (422/413) naming the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False), raw, fields=_field_names(model)) from None


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set(model.model_fields)
    for field in model.model_fields.values():  # nested models' fields (CohereDocument.text)
        for arg in getattr(field.annotation, "__args__", ()):
            for inner in getattr(arg, "__args__", (arg,)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= set(inner.model_fields)
    return names


def field_name(loc: Sequence[int | str], fields: Iterable[str]) -> str:
    """``documents[1].text`` from pydantic's ``("documents", 1, "CohereDocument", "text")`` (union tags skipped)."""
    known = set(fields)
    parts: list[str] = []
    for p in (loc[1:] if loc and loc[0] == "body" else loc):
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in known:
            parts.append(f".{p}" if parts else p)
    return "".join(parts) or "body"


def validation_error(errors: Sequence[Any], raw: bytes, *, fields: Iterable[str]) -> ServeError:
    """The one answer for pydantic's errors: 413 when any is past a limit, else 422 for the first."""
    if not errors:
        return ServeError(422, "validation", "body: invalid request", "body")
    for error in errors:
        if error.get("type") in ("too_long", "string_too_long"):
            return _too_large(error, fields)
    first = errors[0]
    if first.get("type") == "json_invalid":
        return ServeError(422, "validation", _json_problem(raw, str(first.get("ctx", {}).get("error", ""))), "body")
    field = field_name(first.get("loc", ()), fields)
    if field == "body" and first.get("type") in ("model_type", "model_attributes_type", "dict_type"):
        return ServeError(422, "validation", "body: must be a JSON object", "body")
    # A union (a document is a string or an object) fails once per member at the same field: say both.
    same = [e for e in errors if field_name(e.get("loc", ()), fields) == field]
    what = "; ".join(dict.fromkeys(str(e.get("msg", "invalid value")).removeprefix("Value error, ") for e in same))
    message = f"{field}: {what}"
    if len(errors) > len(same):
        message += f" (and {len(errors) - len(same)} more)"
    return ServeError(422, "validation", message, field)


def _too_large(error: Any, fields: Iterable[str]) -> ServeError:
    loc = error.get("loc", ())
    field = field_name(loc, fields)
    limit = (error.get("ctx") or {}).get("max_length")
    value = error.get("input")
    if error["type"] == "too_long":  # the list itself
        actual = (error.get("ctx") or {}).get("actual_length", len(value) if isinstance(value, list) else "too many")
        return ServeError(413, "too_large", f"{field}: {actual} {_ITEMS.get(field, 'items')}, at most {limit} "
                          "per request", field)
    top = next((p for p in loc if isinstance(p, str)), "")
    size = len(value) if isinstance(value, str) else "too many"
    return ServeError(413, "too_large", f"{field}: {size} characters, at most {limit} {_PER.get(top, '')}".rstrip(),
                      field)


def _json_problem(raw: bytes, detail: str) -> str:
    """Say what is wrong with an unreadable body in the client's terms (encoding before syntax)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start:exc.start + 1].hex()
        return (f"body: not valid UTF-8 (byte 0x{byte} at offset {exc.start}); "
                "send JSON encoded as UTF-8")
    if "surrogate" in detail or "hex escape" in detail:
        return f"body: invalid JSON: a \\u escape is a lone UTF-16 surrogate, not a character ({detail})"
    if "recursion limit" in detail:
        return f"body: invalid JSON: nested too deeply ({detail})"
    return f"body: invalid JSON ({detail})" if detail else "body: invalid JSON"
