"""Request and response bodies of the rerank APIs that clients already speak; the pydantic models are the schema.

- Cohere ``/v1/rerank`` and ``/v2/rerank`` (the ``cohere`` SDK, LangChain's and LlamaIndex's Cohere
  rerankers); the same body and response also serve Jina-style clients (``usage``, ``model``).
- text-embeddings-inference ``/rerank`` (``texts``, ``raw_scores``, ``return_text``).

Unknown fields are ignored rather than refused, so a client that sends a newer field (``priority``,
``max_tokens_per_doc``) still works; length limits are checked by the app, not here, so that they
answer 413 (too large) rather than 422 (malformed).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("query", check_fields=False)
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must be a non-empty string")
        return value


class CohereDocument(BaseModel):
    """A document given as an object: ``{"text": ...}``, other fields kept for ``rank_fields``."""

    model_config = ConfigDict(extra="allow")

    text: str | None = None


class RerankRequest(_Request):
    """Cohere rerank request (v1 and v2); ``instruction`` and ``normalize`` are extensions for v2 models."""

    model: str | None = Field(default=None, description="accepted and ignored: the server runs one model")
    query: str
    documents: list[str | CohereDocument]
    top_n: PositiveInt | None = Field(default=None, description="return only the best N (default: all)")
    return_documents: bool = Field(default=False, description="include each document's text in the results")
    rank_fields: list[str] | None = Field(
        default=None, description='object documents: the fields to rank on, joined as "field: value" lines '
                                  '(default: "text")')
    max_tokens_per_doc: PositiveInt | None = Field(
        default=None, description="accepted and ignored: the model's own max_length applies")
    instruction: str | None = Field(default=None, description="v2 models only: a task instruction in the prompt")
    normalize: bool = Field(default=False, description="v2 models: sigmoid(score - shift) instead of the raw logit")

    def texts(self) -> list[str]:
        """Each document as the text to rank; raises ValueError naming the document that has none."""
        fields = self.rank_fields or ["text"]
        out = []
        for i, doc in enumerate(self.documents):
            if isinstance(doc, str):
                out.append(doc)
                continue
            values = doc.model_dump(exclude_none=True)
            missing = [f for f in fields if f not in values]
            if missing:
                raise ValueError(f"documents[{i}] has no field {missing[0]!r}")
            if fields == ["text"]:
                text = values["text"]
                if not isinstance(text, str):
                    raise ValueError(f"documents[{i}].text must be a string")
                out.append(text)
            else:
                out.append("\n".join(f"{f}: {values[f]}" for f in fields))
        return out


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

    query: str
    texts: list[str]
    raw_scores: bool = Field(default=False, description="v1: the logit instead of sigmoid; "
                                                        "v2: the raw logit instead of sigmoid(x - shift)")
    return_text: bool = False
    truncate: bool | None = Field(default=None, description="accepted; inputs are always truncated")
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = Field(
        default=None, description="accepted; documents are cut from the right, as the reference does")
    instruction: str | None = None


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
    max_body_bytes: int
    max_queue: int
    cross_request_batching: bool
    max_wait_ms: float
    version: str


class ErrorBody(BaseModel):
    """Every error is JSON with a message (Cohere's field), a machine-readable kind and the field at fault."""

    message: str
    error: str = Field(description="the same text, under the name text-embeddings-inference clients read")
    error_type: Literal["validation", "too_large", "queue_full", "not_ready", "internal"]
    field: str | None = None
