"""Request and response bodies of the rerank APIs that clients already speak; the pydantic models are the schema.

- Cohere ``/v1/rerank`` and ``/v2/rerank`` (the ``cohere`` SDK, LangChain's and LlamaIndex's Cohere
  rerankers); the same body and response also serve Jina-style clients (``usage``, ``model``).
- text-embeddings-inference ``/rerank`` (``texts``, ``raw_scores``, ``return_text``).

Requests are strict: an integer is an integer (``true`` and ``"1"`` are not), a boolean is
``true`` or ``false``. Unknown fields are ignored rather than refused, so a client that sends a
newer field (``priority``) still works. :func:`request_models` adds an app's limits to the models
(``maxItems``, ``maxLength`` in the OpenAPI schema), and the app answers a value beyond a limit
with 413 (too large), not 422 (malformed). Lists stop at their first bad item (``fail_fast``), so
a body of a million bad items costs one error, not a million.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from mxbai_integrations.serve.config import ServeLimits
from mxbai_integrations.serve.errors import ErrorKind, ServeError

# JSON Schema for "has a character that is not white space" (what the query validator enforces).
NOT_BLANK = r"\S"
_QUERY = "the search query: a non-empty string"
_DOCUMENTS = 'the documents to rank: strings, or objects with a "text" string (or the rank_fields)'
_TEXTS = "the texts to rank"
_INSTRUCTION = "v2 models only: a task instruction in the prompt"
StrictPositiveInt = Annotated[int, Field(strict=True, gt=0)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    @field_validator("query", check_fields=False)
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a non-empty string (not only white space)")
        return value


class CohereDocument(BaseModel):
    """A document given as an object: ``{"text": ...}``, other fields kept for ``rank_fields``."""

    model_config = ConfigDict(extra="allow", strict=True)

    text: str | None = None


class RerankRequest(_Request):
    """Cohere rerank request (v1 and v2); ``instruction`` and ``normalize`` are extensions for v2 models."""

    model: str | None = Field(default=None, description="accepted and ignored: the server runs one model")
    query: str = Field(min_length=1, description=_QUERY, json_schema_extra={"pattern": NOT_BLANK})
    documents: list[str | CohereDocument] = Field(description=_DOCUMENTS, fail_fast=True)
    top_n: StrictPositiveInt | None = Field(default=None, description="return only the best N (default: all)")
    return_documents: bool = Field(default=False, description="include each document's text in the results")
    rank_fields: list[str] | None = Field(
        default=None, min_length=1, fail_fast=True, json_schema_extra={"uniqueItems": True},
        description='object documents: the fields to rank on, joined as "field: value" lines (default: "text"); '
                    'each at most once')
    max_tokens_per_doc: StrictPositiveInt | None = Field(
        default=None, description="accepted and ignored: the model's own max_length applies")
    max_chunks_per_doc: StrictPositiveInt | None = Field(
        default=None, description="v1 models (Cohere v1's field): score up to N overlapping chunks of a document "
                                  "longer than max_length and keep the best; default: the server's long_documents")
    instruction: str | None = Field(default=None, description=_INSTRUCTION)
    normalize: bool = Field(default=False, description="v2 models: sigmoid(score - shift) instead of the raw logit")

    @field_validator("rank_fields")
    @classmethod
    def _fields_once(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            seen: set[str] = set()
            for name in value:
                if name in seen:
                    raise ValueError(f"lists {name!r} twice")
                seen.add(name)
        return value

    def texts(self, max_chars: int | None = None) -> list[str]:
        """Each document as the text to rank.

        Object documents give their ``text``, or with ``rank_fields`` those fields joined as
        ``"field: value"`` lines. The joined text is measured as it is built and refused (413)
        once past ``max_chars``, so a request never makes more text than its limits allow.

        Raises:
            ServeError: 422 naming the document that lacks a field; 413 naming one whose joined
                text is over ``max_chars``.
        """
        fields = self.rank_fields or ["text"]
        out = []
        for i, doc in enumerate(self.documents):
            if isinstance(doc, str):
                out.append(doc)
            elif fields == ["text"]:
                if doc.text is None:
                    raise ServeError(422, "validation", f"documents[{i}] has no field 'text'", f"documents[{i}]")
                out.append(doc.text)
            else:
                out.append(_joined(doc, fields, i, max_chars))
        return out


def _joined(doc: CohereDocument, fields: list[str], i: int, max_chars: int | None) -> str:
    values = {**(doc.model_extra or {}), **({"text": doc.text} if doc.text is not None else {})}
    parts: list[str] = []
    size = 0
    for name in fields:
        value = values.get(name)
        if value is None:
            raise ServeError(422, "validation", f"documents[{i}] has no field {name!r}", f"documents[{i}]")
        part = f"{name}: {value}"
        size += len(part) + (1 if parts else 0)
        if max_chars is not None and size > max_chars:
            raise ServeError(413, "too_large", f"documents[{i}]: the rank_fields text is over {max_chars} characters, "
                             f"at most {max_chars} per document", f"documents[{i}]")
        parts.append(part)
    return "\n".join(parts)


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int = 1


class RerankMeta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits = BilledUnits()


class Usage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    """Cohere's response, plus Jina's ``model`` and ``usage`` fields (Cohere clients ignore extra fields)."""

    id: str
    results: list[RerankResult]
    meta: RerankMeta
    model: str
    usage: Usage


class TeiRerankRequest(_Request):
    """text-embeddings-inference ``/rerank``. Texts are always truncated to the model's max_length."""

    query: str = Field(min_length=1, description=_QUERY, json_schema_extra={"pattern": NOT_BLANK})
    texts: list[str] = Field(description=_TEXTS, fail_fast=True)
    raw_scores: bool = Field(default=False, description="v1: the logit instead of sigmoid; "
                                                        "v2: the raw logit instead of sigmoid(x - shift)")
    return_text: bool = False
    truncate: bool | None = Field(default=None, description="accepted; inputs are always truncated")
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = Field(
        default=None, description="accepted; documents are cut from the right, as the reference does")
    instruction: str | None = Field(default=None, description=_INSTRUCTION)


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class Health(BaseModel):
    status: Literal["ok", "loading", "failed", "stopping"]
    detail: str | None = None


class Info(BaseModel):
    """What the server runs and the limits it enforces (``/info``)."""

    model_id: str
    family: str
    dtype: str
    providers: list[str]
    max_length: int
    path: str
    max_documents: int
    max_document_chars: int
    max_query_chars: int
    max_body_bytes: int
    max_queue: int
    cross_request_batching: bool
    max_wait_ms: float
    version: str


class ErrorBody(BaseModel):
    """Every error is JSON with a message (Cohere's field), a machine-readable kind and the field at fault."""

    message: str
    error: str = Field(description="the same text, under the name text-embeddings-inference clients read")
    error_type: ErrorKind
    field: str | None = Field(description="the request field at fault (query, documents[3], body), or null")


def request_models(limits: ServeLimits) -> tuple[type[RerankRequest], type[TeiRerankRequest]]:
    """The request models with ``limits`` in them: what the app validates with and what its OpenAPI shows.

    Subclasses of :class:`RerankRequest` and :class:`TeiRerankRequest` (same names in the schema),
    with ``maxItems`` on the document list and ``maxLength`` on the query, the instruction and each
    document text. A value past one of these is answered 413 by the app.
    """
    query: Any = Annotated[str, Field(min_length=1, max_length=limits.max_query_chars, description=_QUERY,
                                      json_schema_extra={"pattern": NOT_BLANK})]
    instruction: Any = Annotated[str | None, Field(max_length=limits.max_query_chars, description=_INSTRUCTION)]
    text: Any = Annotated[str, Field(max_length=limits.max_document_chars)]
    document = create_model("CohereDocument", __base__=CohereDocument, __doc__=CohereDocument.__doc__,
                            text=(text | None, None))
    documents: Any = list[text | document]
    cohere = create_model(
        "RerankRequest", __base__=RerankRequest, __doc__=RerankRequest.__doc__, query=(query, ...),
        documents=(documents, Field(max_length=limits.max_documents, fail_fast=True, description=_DOCUMENTS)),
        instruction=(instruction, None))
    tei = create_model(
        "TeiRerankRequest", __base__=TeiRerankRequest, __doc__=TeiRerankRequest.__doc__, query=(query, ...),
        texts=(list[text], Field(max_length=limits.max_documents, fail_fast=True, description=_TEXTS)),
        instruction=(instruction, None))
    return cohere, tei
