"""Export-time validation: the artifact, scored the way users run it, against the reference.

The artifact is scored through the run time's ``Scorer`` (its encoder, token-budget batching,
padding, scatter back to the caller's order and activation), so the verdict covers the path users
run rather than a second implementation of it. The reference is the library users already trust:
sentence-transformers ``CrossEncoder`` for v1 and ``mxbai_rerank.MxbaiRerankV2`` for v2, on the
same checkpoint in float32. Scores are compared unpadded (one pair per batch on both sides) and
padded (a whole case as one batch on both sides), and rankings are compared per case and pooled
over every pair. Any non-finite score fails the validation.

Token ids are judged against the checkpoint's own tokenizer (``tokenizer_check.py``), not against
the reference library's: transformers 5 rebuilds DeBERTa-v2's tokenizer from the class and gives
other ids than the checkpoint as published. Every validation also checks the ids on the hard texts
(``hard_texts.py``) and scores a few of them. Where the reference library tokenizes differently from
the checkpoint, the export says so in one warning line, the record names it, and the reference
model is fed the checkpoint's ids, so the score comparison still compares the same inputs.

fp32 scores are judged by a tolerance that grows with the spread of the reference's scores (see
``fp32_tolerances``): float-order noise between torch and ONNX Runtime grows with the scores'
magnitude (the large-v2 shape spans about 40 logits), while the defects this check exists for (a
dropped bias, a wrong position id, a shifted token) move scores by far more.

Memory: the artifact is scored first and its session released before the reference model is
loaded, so the two are never in memory together (a large-v2 export peaked at their sum).

Why ~580 lines: the cases, the two sides, the verdict and the record are one procedure whose
rules must be read together; ``run_validation`` (score ours, then the reference) and ``_verdict``
(every comparison that decides the record) are long because each is one ordered list of checks.

Another reference can be plugged in through ``validate_artifact(..., reference=...)``: a name
registered with ``register_reference`` or a factory (see ``ReferenceFactory``).
"""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mxbai_integrations.artifact import CaseRecord, DecidedBy, Manifest, Tolerances, ValidationRecord
from mxbai_integrations.errors import ArgumentError, ArgumentTypeError, ModelNotFoundError, NonFiniteScoreError
from mxbai_integrations.options import RerankerOptions
from mxbai_integrations.ranking import spearman
from mxbai_integrations.scorer import Scorer
from onnx_export.family import model_family
from onnx_export.hard_texts import HARD_QUERY, HARD_TEXTS, scored_texts
from onnx_export.tokenizer_check import TokenizerCheck, checkpoint_rows, shown

logger = logging.getLogger(__name__)

# fp32: |artifact - reference| <= max(floor, relative * spread of the reference's scores).
TOL_UNPADDED = 1e-4
TOL_PADDED = 1e-3
# Relative to the spread (max - min) of the reference's unpadded scores over all validation pairs.
# Float-order noise between torch and ONNX Runtime, measured (benchmarks/RESULTS.md "Export:
# tolerances"): 2.2e-6 of the spread for the large-v2 shape at full depth (9.35e-5 on 42 logits),
# 5e-6 at its width cut to two layers; 1e-4 passes both by 20x or more. The defects injected in
# tests/test_tolerances.py (a dropped bias, a wrong position id, a shifted token) move scores by
# 1e-2 of the spread or more, and an "fp32" graph with fp16-rounded weights by several 1e-4.
REL_TOL_UNPADDED = 1e-4
REL_TOL_PADDED = 1e-3
# Reduced-precision artifacts are refused only when clearly broken; their drift is recorded.
MIN_SPEARMAN_REDUCED = 0.95
# Long cases exercise truncation; validating at a shorter length keeps export-time CPU cost low.
VALIDATION_MAX_LENGTH = 256
# The reference runs on the CPU in float32; the artifact is scored on the CPU too, so the verdict
# does not depend on which GPU (if any) the exporting machine has.
VALIDATION_PROVIDERS = ["CPUExecutionProvider"]
DEFAULT_REFERENCE = "library"
# The document each hard text is paired with when it is checked as a query.
HARD_DOCUMENT = "A short document."
HARD_CASE = "hard-texts"

_LONG = (
    "Paris is the capital and most populous city of France. It has been a major centre of finance, "
    "diplomacy, commerce, fashion and science for centuries. "
)


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    documents: list[str]
    instruction: str | None = None


CASES = [
    Case("short", "What is the capital of France?", [
        "Paris is the capital of France.", "Berlin is the capital of Germany.",
        "The Eiffel Tower is in Paris.", "Bananas are rich in potassium.", "France is a country in Europe.",
    ]),
    Case("long", "history of paris", [_LONG * 60, "Paris.", _LONG * 3, "London is large. " * 200]),
    Case("multilingual", "Wo liegt der Eiffelturm?", [
        "Der Eiffelturm steht in Paris.", "La tour Eiffel se trouve à Paris.", "埃菲尔铁塔位于巴黎。",
        "エッフェル塔はパリにあります。", "Эйфелева башня находится в Париже.", "El río Sena cruza París 🗼.",
    ]),
    Case("empty-ish", "a", ["", " ", ".", "\n\n", "a", "0 1 0 1"]),
    Case("instruction", "best python web framework", [
        "Django is a high-level Python web framework.", "Flask is a lightweight WSGI web application framework.",
        "Rust is a systems programming language.", "FastAPI is fast.",
    ], instruction="Find documents that recommend a framework."),
    # A scored sample of the hard texts (all of them are checked for ids).
    Case(HARD_CASE, HARD_QUERY, scored_texts()),
]


class Reference(Protocol):
    """What validation needs from a reference implementation of the checkpoint's scores.

    A reference may also offer ``scores_for_ids(rows, *, padded)`` (scores of its model on given
    token ids, as ``LibraryReference`` does) and ``tokenizer_name``; with the first, cases where its
    tokenizer differs from the checkpoint's are scored on the checkpoint's ids.
    """

    name: str  # recorded in the manifest, e.g. "mxbai-rerank 0.1.6 MxbaiRerankV2"

    def ids(self, case: Case) -> list[list[int]]:
        """The token ids the reference feeds its model for each (query, document) pair of ``case``."""
        ...

    def scores(self, case: Case, *, padded: bool) -> np.ndarray:
        """Scores on the user-facing scale (v1 probabilities, v2 raw logits); padded: one batch per case."""
        ...


# (family, source, max_length, revision) -> Reference. The torch forward of the untouched
# checkpoint needed on transformers 5 (where the reference libraries may not run) plugs in here.
ReferenceFactory = Callable[[str, str, int, "str | None"], Reference]


class LibraryReference:
    """The reference library on the source checkpoint, in float32 on the CPU."""

    def __init__(self, family: str, source: str, max_length: int, revision: str | None) -> None:
        import torch

        self.family = family
        self.max_length = max_length
        kw = {"revision": revision} if revision else {}
        if family == "v1":
            from sentence_transformers import CrossEncoder

            self.name = f"sentence-transformers {importlib.metadata.version('sentence-transformers')} CrossEncoder"
            self.model = CrossEncoder(source, max_length=max_length, device="cpu", **kw)
            self.tokenizer = self.model.tokenizer
        else:
            from mxbai_rerank import MxbaiRerankV2

            from onnx_export.reference_compat import SHIM_NOTE, ensure_prepare_for_model

            self.name = f"mxbai-rerank {importlib.metadata.version('mxbai-rerank')} MxbaiRerankV2"
            self.model = MxbaiRerankV2(source, device="cpu", torch_dtype=torch.float32, max_length=max_length, **kw)
            self.tokenizer = self.model.tokenizer
            if ensure_prepare_for_model(self.tokenizer):
                # transformers 5: the reference's own prompt, tokenization, padding and forward, with the
                # one tokenizer method transformers 5 removed put back (see reference_compat.py).
                self.name += f" on transformers {importlib.metadata.version('transformers')}; {SHIM_NOTE}"
        version = importlib.metadata.version("transformers")
        self.tokenizer_name = f"transformers {version} {type(self.tokenizer).__name__}"

    def ids(self, case: Case) -> list[list[int]]:
        if self.family == "v1":
            enc = self.tokenizer([case.query] * len(case.documents), case.documents, truncation=True,
                                 max_length=self.max_length)
            return [list(x) for x in enc["input_ids"]]
        batch = self.model.prepare_inputs([case.query] * len(case.documents), case.documents,
                                          instruction=case.instruction)
        return [ids[m.bool()].tolist() for ids, m in zip(batch["input_ids"], batch["attention_mask"], strict=False)]

    def scores(self, case: Case, *, padded: bool) -> np.ndarray:
        pairs = list(zip([case.query] * len(case.documents), case.documents, strict=False))
        if self.family == "v1":
            bs = len(pairs) if padded else 1
            return np.asarray(self.model.predict(pairs, batch_size=bs, show_progress_bar=False), np.float64)
        if padded:
            return self.model.predict([q for q, _ in pairs], case.documents,
                                      instruction=case.instruction).double().numpy()
        return np.concatenate([
            self.model.predict([q], [d], instruction=case.instruction).double().numpy() for q, d in pairs
        ])

    def scores_for_ids(self, rows: list[list[int]], *, padded: bool) -> np.ndarray:
        """The reference model's scores on given ids, padded as the library pads (v1 right, v2 left).

        v1: the CrossEncoder's own model and activation; v2: ``MxbaiRerankV2.forward`` (the full
        lm_head, logit("1") - logit("0") at the last position) on batches from the reference
        tokenizer's own ``pad``.
        """
        import torch

        batches = [rows] if padded else [[row] for row in rows]
        out = []
        with torch.inference_mode():
            for batch in batches:
                if self.family == "v1":
                    feats = self.tokenizer.pad({"input_ids": batch}, padding="longest", return_tensors="pt")
                    logits = self.model.model(input_ids=feats["input_ids"],
                                              attention_mask=feats["attention_mask"]).logits
                    scores = self.model.activation_fn(logits).reshape(-1)
                else:
                    feats = self.tokenizer.pad([{"input_ids": r, "attention_mask": [1] * len(r)} for r in batch],
                                               padding="longest", pad_to_multiple_of=8, return_tensors="pt")
                    scores = self.model.forward(input_ids=feats["input_ids"],
                                                attention_mask=feats["attention_mask"]).logits
                out.append(scores.double().cpu().numpy())
        return np.concatenate(out)


REFERENCES: dict[str, ReferenceFactory] = {DEFAULT_REFERENCE: LibraryReference}


def register_reference(name: str, factory: ReferenceFactory) -> None:
    """Make ``validate_artifact(..., reference=name)`` use ``factory`` (e.g. a plain torch forward)."""
    if not isinstance(name, str) or not name:
        raise ArgumentError(f"name must be a non-empty str, got {name!r}")
    REFERENCES[name] = factory


def _reference_factory(reference: str | ReferenceFactory | None) -> ReferenceFactory:
    if reference is None:
        return REFERENCES[DEFAULT_REFERENCE]
    if isinstance(reference, str):
        if reference not in REFERENCES:
            raise ArgumentError(f"reference must be one of {sorted(REFERENCES)} or a factory, got {reference!r}")
        return REFERENCES[reference]
    if callable(reference):
        return reference
    raise ArgumentTypeError(f"reference must be a name, a factory or None, got {type(reference).__name__}")


def _score(scorer: Scorer, case: Case, *, batch_size: int) -> tuple[np.ndarray, list[int]]:
    """Scores through the shipped path, NaN where the model returned a non-finite score."""
    try:
        scored = scorer.score(case.query, case.documents, instruction=case.instruction, batch_size=batch_size)
        return np.asarray(scored.scores, np.float64), []
    except NonFiniteScoreError as exc:
        return np.full(len(case.documents), np.nan), exc.indices


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(d.max()) if np.isfinite(d).all() else float("nan")


def fp32_tolerances(spread: float) -> Tolerances:
    """The fp32 limits for reference scores spanning ``spread`` (max - min, user-facing scale).

    ``max(floor, relative * spread)``: a fixed 1e-4 would be met by float-order noise alone at the
    flagship's size (large-v2: 9.35e-5 over a 42-logit spread), while v1 probabilities (spread at
    most 1) keep the floor.

    Examples:
        >>> fp32_tolerances(42.2).max_abs_diff_unpadded
        0.00422
        >>> fp32_tolerances(0.9).max_abs_diff_unpadded
        0.0001
    """
    spread = float(spread) if np.isfinite(spread) else 0.0
    tolerance = Tolerances(max_abs_diff_unpadded=float(f"{max(TOL_UNPADDED, REL_TOL_UNPADDED * spread):.3g}"),
                           max_abs_diff_padded=float(f"{max(TOL_PADDED, REL_TOL_PADDED * spread):.3g}"))
    # Where the record type has them (mxbai_integrations newer than this code), the rule is stated too.
    return _with_optional_fields(tolerance, relative_to_spread_unpadded=REL_TOL_UNPADDED,
                                 relative_to_spread_padded=REL_TOL_PADDED)


def fp32_tolerance_rule(spread: float) -> str:
    """The fp32 rule in words, with this validation's spread (written into the manifest).

    Examples:
        >>> fp32_tolerance_rule(42.2).split(";")[0]
        'max abs diff <= max(0.0001, 0.0001 x 42.2) = 0.00422 unpadded, max(0.001, 0.001 x 42.2) = 0.0422 padded'
    """
    tol = fp32_tolerances(spread)
    return (f"max abs diff <= max({TOL_UNPADDED:g}, {REL_TOL_UNPADDED:g} x {spread:.3g}) = "
            f"{tol.max_abs_diff_unpadded:g} unpadded, max({TOL_PADDED:g}, {REL_TOL_PADDED:g} x {spread:.3g}) = "
            f"{tol.max_abs_diff_padded:g} padded; {spread:.3g} = spread (max - min) of the reference scores")


def _describe_family(family: str) -> str:
    return {"v1": "v1 (DeBERTa-v2 cross-encoder)", "v2": "v2 (Qwen2 LLM reranker)"}.get(family, family)


def check_reference_family(manifest: Manifest, source: str, revision: str | None = None) -> None:
    """Refuse a reference checkpoint of the other family before any weights are loaded.

    Raises:
        ArgumentError: ``source`` is a checkpoint of another family than the artifact (or of none).
        ModelNotFoundError: ``source`` has no readable config.json.
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"reference: cannot load a model config from {source!r}: {exc}") from exc
    family = model_family(config, source, argument="reference")
    if family != manifest.family:
        raise ArgumentError(
            f"reference: {source!r} is a {_describe_family(family)} checkpoint, but the artifact is a "
            f"{_describe_family(manifest.family)} model; pass the checkpoint the artifact was exported from"
        )


@dataclass
class _Side:
    """One case seen from one side: ids, unpadded and padded scores, rows that were not finite."""

    ids: list[list[int]]
    single: np.ndarray = field(default_factory=lambda: np.zeros(0))
    batch: np.ndarray = field(default_factory=lambda: np.zeros(0))
    non_finite: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Validation:
    """What a validation produced: the manifest's record and the tokenizer check behind its ids verdict."""

    record: ValidationRecord
    tokenizer_check: TokenizerCheck
    score_spread: float = float("nan")  # max - min of the reference's unpadded scores (fp32 tolerance)


def _hard_roles() -> list[Case]:
    """Each hard text as a document (one case) and as a query (one case per text; the run time refuses
    white-space-only queries, so those are checked as documents only)."""
    texts = [text for _, text in HARD_TEXTS]
    return [Case("hard-documents", HARD_QUERY, texts), *(Case(f"hard-query-{name}", text, [HARD_DOCUMENT])
                                                          for name, text in HARD_TEXTS if text.strip())]


def _differing_texts(ours: dict[str, list[list[int]]], theirs: dict[str, list[list[int]]]) -> list[str]:
    """Names of the hard texts whose ids differ between two sides (as a document or as a query)."""
    out = []
    for i, (name, _) in enumerate(HARD_TEXTS):
        if (ours["hard-documents"][i] != theirs["hard-documents"][i]
                or ours.get(f"hard-query-{name}") != theirs.get(f"hard-query-{name}")):
            out.append(name)
    return out


def run_validation(
    artifact_dir: Path,
    manifest: Manifest,
    source: str,
    *,
    revision: str | None = None,
    reference: str | ReferenceFactory | None = None,
    checkpoint_tokenizer: Any = None,
) -> Validation:
    """``validate_artifact``, also returning the tokenizer check (the exporter writes both).

    Args:
        artifact_dir, manifest, source, revision, reference: as for ``validate_artifact``.
        checkpoint_tokenizer: the checkpoint's own tokenizer (a ``checkpoint_tokenizer.CheckpointTokenizer``);
            found from ``source`` when None.
    """
    from onnx_export.checkpoint_tokenizer import locate

    factory = _reference_factory(reference)
    check_reference_family(manifest, source, revision)
    max_length = min(VALIDATION_MAX_LENGTH, manifest.max_length)
    cases = [c for c in CASES if not (c.instruction and manifest.family == "v1")]
    hard = _hard_roles()

    # The checkpoint's own ids: its tokenizer file (or the conversion of its sentencepiece / BPE files).
    ck = checkpoint_tokenizer or locate(source, family=manifest.family, revision=revision)
    ck_tok = ck.load()
    model_max = manifest.prompt.model_max_length if manifest.prompt is not None else None

    def ck_rows(case: Case) -> list[list[int]]:
        return checkpoint_rows(manifest.family, ck_tok, case.query, case.documents, max_length=max_length,
                               model_max_length=model_max, instruction=case.instruction)

    checkpoint = {c.name: ck_rows(c) for c in [*cases, *hard]}

    # The artifact first, through the shipped path; its session is released before the reference loads.
    with warnings.catch_warnings():
        # fp16 graphs on the CPU warn that they are GPU graphs; here that is intended.
        warnings.simplefilter("ignore", UserWarning)
        scorer = Scorer(Path(artifact_dir), manifest,
                        RerankerOptions(providers=VALIDATION_PROVIDERS, max_length=max_length, verify=False))
    ours: dict[str, _Side] = {}
    for case in cases:
        side = _Side(scorer.encode(case.query, case.documents, instruction=case.instruction))
        side.single, bad_single = _score(scorer, case, batch_size=1)
        side.batch, bad_batch = _score(scorer, case, batch_size=len(case.documents))
        side.non_finite = sorted(set(bad_single) | set(bad_batch))
        ours[case.name] = side
    ours_hard = {c.name: scorer.encode(c.query, c.documents, instruction=c.instruction) for c in hard}
    scored_with = (f"the run time's Scorer on {scorer.providers[0]} (token-budget batching, "
                   f"max_batch_tokens {scorer.max_batch_tokens})")
    del scorer
    gc.collect()

    ref = factory(manifest.family, source, max_length, revision)
    ref_name, ref_dtype = ref.name, str(getattr(ref, "dtype", "fp32"))
    ref_tokenizer = str(getattr(ref, "tokenizer_name", "") or "the reference's tokenizer")
    feed = getattr(ref, "scores_for_ids", None)
    ref_sides: dict[str, _Side] = {}
    fed_cases: list[str] = []
    for case in cases:
        ref_ids = ref.ids(case)
        side = _Side(ref_ids)
        if ref_ids != checkpoint[case.name] and feed is not None:
            # The reference library's tokenizer is not the checkpoint's: run its model on the checkpoint's ids.
            fed_cases.append(case.name)
            side.single = np.asarray(feed(checkpoint[case.name], padded=False), np.float64)
            side.batch = np.asarray(feed(checkpoint[case.name], padded=True), np.float64)
        else:
            side.single = np.asarray(ref.scores(case, padded=False), np.float64)
            side.batch = np.asarray(ref.scores(case, padded=True), np.float64)
        ref_sides[case.name] = side
    ref_hard = {c.name: ref.ids(c) for c in hard}
    del ref, feed
    gc.collect()

    reference_differs = _differing_texts(ref_hard, checkpoint)
    cases_differ = [c.name for c in cases if ref_sides[c.name].ids != checkpoint[c.name]]
    first = ""
    if reference_differs:
        first = f"{reference_differs[0]} {shown(dict(HARD_TEXTS)[reference_differs[0]])}"
    elif cases_differ:
        first = f"case {cases_differ[0]}"
    check = TokenizerCheck(
        checkpoint_tokenizer=ck.describe(), reference_tokenizer=ref_tokenizer,
        texts=len(HARD_TEXTS), artifact_differs=_differing_texts(ours_hard, checkpoint),
        reference_differs=reference_differs, cases_reference_differs=cases_differ, first_difference=first,
    )
    if not check.reference_follows_checkpoint:
        logger.warning(
            "%s tokenizes differently from the checkpoint's own tokenizer on %d of %d hard texts (first: %s); "
            "the artifact follows the checkpoint, and the reference was scored on the checkpoint's token ids",
            check.reference_tokenizer, len(reference_differs), len(HARD_TEXTS), first)
    if fed_cases:
        ref_name += f"; fed the checkpoint's token ids in {', '.join(fed_cases)} ({ref_tokenizer} differs)"
    finite_ref = [ref_sides[c.name].single for c in cases if np.isfinite(ref_sides[c.name].single).all()]
    spread = float(np.ptp(np.concatenate(finite_ref))) if finite_ref else float("nan")
    record = _verdict(manifest, cases, ours, ref_sides, checkpoint, check, reference_name=ref_name,
                      reference_dtype=ref_dtype, scored_with=scored_with, max_length=max_length, spread=spread)
    return Validation(record=_with_optional_fields(record, tokenizer_check=check), tokenizer_check=check,
                      score_spread=spread)


def _with_optional_fields(record: Any, **values: Any) -> Any:
    """Set those of ``values`` that the record type has (a newer mxbai_integrations carries more, e.g.
    ``ValidationRecord.tokenizer_check``); the others stay in the exporter's ``created_with`` lines."""
    known = {f.name for f in fields(record)}
    present = {k: v for k, v in values.items() if k in known}
    return replace(record, **present) if present else record


def validate_artifact(
    artifact_dir: Path,
    manifest: Manifest,
    source: str,
    *,
    revision: str | None = None,
    reference: str | ReferenceFactory | None = None,
) -> ValidationRecord:
    """Compare the artifact's scores with the reference's and return the manifest's validation record.

    Args:
        artifact_dir: the artifact (its manifest may not be written yet: ``manifest`` is used).
        manifest: the artifact's manifest.
        source: the checkpoint the reference loads (hub id or local directory); its own tokenizer is
            the oracle for token ids.
        revision: hub revision of ``source``.
        reference: None or "library" (CrossEncoder for v1, MxbaiRerankV2 for v2), another name
            registered with ``register_reference``, or a ``ReferenceFactory``.

    Returns:
        The record, with the verdict, what decided it, and the tolerances it was judged by.

    Raises:
        ArgumentError: ``source`` is a checkpoint of the other family (raised before any weights load).

    Examples:
        >>> manifest = read_manifest("out")  # doctest: +SKIP
        >>> record = validate_artifact(Path("out"), manifest, "mixedbread-ai/mxbai-rerank-base-v2")  # doctest: +SKIP
        >>> print(record.summary())  # doctest: +SKIP
        passed against mxbai-rerank 0.1.6 MxbaiRerankV2: max abs diff 2.1e-06 unpadded (<= 0.0001), ...
    """
    return run_validation(artifact_dir, manifest, source, revision=revision, reference=reference).record


def _verdict(manifest: Manifest, cases: list[Case], ours: dict[str, _Side], ref: dict[str, _Side],
             checkpoint: dict[str, list[list[int]]], check: TokenizerCheck, *, reference_name: str,
             reference_dtype: str, scored_with: str, max_length: int, spread: float) -> ValidationRecord:
    records: list[CaseRecord] = []
    pooled_ours: list[np.ndarray] = []
    pooled_ref: list[np.ndarray] = []
    for case in cases:
        o, r = ours[case.name], ref[case.name]
        finite = not o.non_finite and np.isfinite(r.single).all() and np.isfinite(r.batch).all()
        if finite:
            rho = spearman(o.batch, r.single)
            top1 = int(np.argmax(o.batch)) == int(np.argmax(r.single))
            pooled_ours.append(o.batch)
            pooled_ref.append(r.single)
        else:
            rho, top1 = float("nan"), False
        records.append(CaseRecord(
            case=case.name, pairs=len(case.documents), token_ids_equal=o.ids == checkpoint[case.name],
            max_abs_diff_unpadded=_max_abs(o.single, r.single), max_abs_diff_padded=_max_abs(o.batch, r.batch),
            spearman=rho, top1_agrees=top1, non_finite=o.non_finite,
        ))

    failed_ids = [c.case for c in records if not c.token_ids_equal]
    ours_bad = [f"{c.case} (documents {c.non_finite})" for c in records if c.non_finite]
    ref_bad = [c.case for c in records if not c.non_finite and not np.isfinite(c.spearman)]
    all_finite = not ours_bad and not ref_bad

    def stat(values: list[float], pick: Callable[[list[float]], float]) -> float:
        return pick(values) if values and all(np.isfinite(v) for v in values) else float("nan")

    max_unpadded = stat([c.max_abs_diff_unpadded for c in records], max)
    max_padded = stat([c.max_abs_diff_padded for c in records], max)
    spearman_min = stat([c.spearman for c in records], min)
    pooled = spearman(np.concatenate(pooled_ours), np.concatenate(pooled_ref)) if all_finite else float("nan")
    top1 = sum(c.top1_agrees for c in records) / len(records)

    failures = []
    decided_by: DecidedBy
    if failed_ids:
        failures.append(f"token ids differ from the checkpoint's own tokenizer in {', '.join(failed_ids)}")
    if check.artifact_differs:
        failures.append(f"token ids differ from the checkpoint's own tokenizer on hard texts "
                        f"{', '.join(check.artifact_differs)}")
    if ours_bad:
        failures.append(f"the artifact returned NaN/inf scores in {', '.join(ours_bad)}")
    if ref_bad:
        failures.append(f"the reference returned NaN/inf scores in {', '.join(ref_bad)}")
    if manifest.dtype == "fp32":
        decided_by = "max_abs_diff"
        tolerance = fp32_tolerances(spread)
        tol_unpadded, tol_padded = tolerance.max_abs_diff_unpadded, tolerance.max_abs_diff_padded
        assert tol_unpadded is not None and tol_padded is not None
        rule = (f"max({TOL_UNPADDED:g}, {REL_TOL_UNPADDED:g} x score spread {spread:.3g})"
                if tol_unpadded > TOL_UNPADDED else f"{TOL_UNPADDED:g}")
        if all_finite:
            if max_unpadded > tol_unpadded:
                failures.append(f"max abs diff unpadded {max_unpadded:.3g} > {tol_unpadded:g} ({rule})")
            if max_padded > tol_padded:
                failures.append(f"max abs diff padded {max_padded:.3g} > {tol_padded:g}")
            if top1 < 1.0:
                failures.append("top-1 differs in " + ", ".join(c.case for c in records if not c.top1_agrees))
    else:
        # Pooled over every pair: a single swap of two near-equal scores in a 4-document case
        # would otherwise decide the verdict.
        decided_by = "spearman_pooled"
        tolerance = Tolerances(min_spearman_pooled=MIN_SPEARMAN_REDUCED)
        if all_finite and pooled < MIN_SPEARMAN_REDUCED:
            failures.append(f"pooled Spearman {pooled:.4f} < {MIN_SPEARMAN_REDUCED:g}")
    record = ValidationRecord(
        passed=not failures,
        reference=reference_name,
        reference_dtype=reference_dtype,
        scored_with=scored_with,
        max_length=max_length,
        pairs=sum(c.pairs for c in records),
        token_ids_equal=not failed_ids and not check.artifact_differs,
        all_finite=all_finite,
        max_abs_diff_unpadded=max_unpadded,
        max_abs_diff_padded=max_padded,
        spearman_min=spearman_min,
        spearman_pooled=pooled,
        top1_agreement=top1,
        decided_by=decided_by,
        tolerance=tolerance,
        failures=failures,
        cases=records,
    )
    return _with_optional_fields(record, score_spread=spread)
