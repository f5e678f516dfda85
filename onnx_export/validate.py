"""Export-time validation: the artifact, scored the way users run it, against the reference.

The artifact is scored through ``MxbaiReranker`` itself (its encoder, token-budget batching,
padding, scatter back to the caller's order and activation), so the verdict covers the path users
run rather than a second implementation of it. The reference is the library users already trust:
sentence-transformers ``CrossEncoder`` for v1 and ``mxbai_rerank.MxbaiRerankV2`` for v2, on the
same checkpoint in float32. Token ids must be equal; scores are compared unpadded (one pair per
batch on both sides) and padded (a whole case as one batch on both sides), and rankings are
compared per case and pooled over every pair. Any non-finite score fails the validation.

Another reference can be plugged in through ``validate_artifact(..., reference=...)``: a name
registered with ``register_reference`` or a factory (see ``ReferenceFactory``).
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mxbai_integrations.artifact import CaseRecord, DecidedBy, Manifest, Tolerances, ValidationRecord
from mxbai_integrations.reranker import MxbaiReranker, NonFiniteScoreError

TOL_UNPADDED = 1e-4
TOL_PADDED = 1e-3
# Reduced-precision artifacts are refused only when clearly broken; their drift is recorded.
MIN_SPEARMAN_REDUCED = 0.95
# Long cases exercise truncation; validating at a shorter length keeps export-time CPU cost low.
VALIDATION_MAX_LENGTH = 256
# The reference runs on the CPU in float32; the artifact is scored on the CPU too, so the verdict
# does not depend on which GPU (if any) the exporting machine has.
VALIDATION_PROVIDERS = ["CPUExecutionProvider"]
DEFAULT_REFERENCE = "library"

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
]


class Reference(Protocol):
    """What validation needs from a reference implementation of the checkpoint's scores."""

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

    def ids(self, case: Case) -> list[list[int]]:
        if self.family == "v1":
            enc = self.tokenizer([case.query] * len(case.documents), case.documents, truncation=True,
                                 max_length=self.model.max_length)
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


REFERENCES: dict[str, ReferenceFactory] = {DEFAULT_REFERENCE: LibraryReference}


def register_reference(name: str, factory: ReferenceFactory) -> None:
    """Make ``validate_artifact(..., reference=name)`` use ``factory`` (e.g. a plain torch forward)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    REFERENCES[name] = factory


def _reference_factory(reference: str | ReferenceFactory | None) -> ReferenceFactory:
    if reference is None:
        return REFERENCES[DEFAULT_REFERENCE]
    if isinstance(reference, str):
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {sorted(REFERENCES)} or a factory, got {reference!r}")
        return REFERENCES[reference]
    if callable(reference):
        return reference
    raise TypeError(f"reference must be a name, a factory or None, got {type(reference).__name__}")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation with tied ranks averaged; NaN or inf is an error, never a rank.

    An argsort-based rank would give NaN a place (last) and report a high correlation for a model
    that returned no scores at all.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman: {x.size} scores against {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("spearman: the scores contain NaN or inf, which have no rank")
    if x.size < 2:
        return 1.0
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = float(np.sqrt((rx**2).sum() * (ry**2).sum()))
    if denom == 0.0:  # a constant side: agreement only if both are constant
        return 1.0 if not rx.any() and not ry.any() else 0.0
    return float((rx * ry).sum() / denom)


def _score(reranker: MxbaiReranker, case: Case, *, batch_size: int) -> tuple[np.ndarray, list[int]]:
    """Scores through the shipped path, NaN where the model returned a non-finite score."""
    try:
        return np.asarray(reranker.score(case.query, case.documents, instruction=case.instruction,
                                         batch_size=batch_size), np.float64), []
    except NonFiniteScoreError as exc:
        return np.full(len(case.documents), np.nan), exc.indices


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(d.max()) if np.isfinite(d).all() else float("nan")


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
        source: the checkpoint the reference loads (hub id or local directory).
        revision: hub revision of ``source``.
        reference: None or "library" (CrossEncoder for v1, MxbaiRerankV2 for v2), another name
            registered with ``register_reference``, or a ``ReferenceFactory``.

    Returns:
        The record, with the verdict, what decided it, and the tolerances it was judged by.

    Examples:
        >>> record = validate_artifact(Path("out"), read_manifest("out"), "mixedbread-ai/mxbai-rerank-base-v2")
        >>> print(record.summary())  # doctest: +SKIP
        passed against mxbai-rerank 0.1.6 MxbaiRerankV2: max abs diff 2.1e-06 unpadded (<= 0.0001), ...
    """
    factory = _reference_factory(reference)
    max_length = min(VALIDATION_MAX_LENGTH, manifest.max_length)
    ref = factory(manifest.family, source, max_length, revision)
    with warnings.catch_warnings():
        # fp16 graphs on the CPU warn that they are GPU graphs; here that is intended.
        warnings.simplefilter("ignore", UserWarning)
        reranker = MxbaiReranker.from_manifest(Path(artifact_dir), manifest, providers=VALIDATION_PROVIDERS,
                                               max_length=max_length, verify=False)

    cases: list[CaseRecord] = []
    pooled_ours: list[np.ndarray] = []
    pooled_ref: list[np.ndarray] = []
    for case in CASES:
        if case.instruction and manifest.family == "v1":
            continue
        same_ids = reranker.encode(case.query, case.documents, instruction=case.instruction) == ref.ids(case)
        ours_single, bad_single = _score(reranker, case, batch_size=1)
        ours_batch, bad_batch = _score(reranker, case, batch_size=len(case.documents))
        ref_single = np.asarray(ref.scores(case, padded=False), np.float64)
        ref_batch = np.asarray(ref.scores(case, padded=True), np.float64)
        non_finite = sorted(set(bad_single) | set(bad_batch))
        finite = not non_finite and np.isfinite(ref_single).all() and np.isfinite(ref_batch).all()
        if finite:
            rho = spearman(ours_batch, ref_single)
            top1 = int(np.argmax(ours_batch)) == int(np.argmax(ref_single))
            pooled_ours.append(ours_batch)
            pooled_ref.append(ref_single)
        else:
            rho, top1 = float("nan"), False
        cases.append(CaseRecord(
            case=case.name, pairs=len(case.documents), token_ids_equal=same_ids,
            max_abs_diff_unpadded=_max_abs(ours_single, ref_single),
            max_abs_diff_padded=_max_abs(ours_batch, ref_batch),
            spearman=rho, top1_agrees=top1, non_finite=non_finite,
        ))
    return _verdict(manifest, cases, pooled_ours, pooled_ref, reference=ref, reranker=reranker, max_length=max_length)


def _verdict(manifest: Manifest, cases: list[CaseRecord], pooled_ours: list[np.ndarray], pooled_ref: list[np.ndarray],
             *, reference: Reference, reranker: MxbaiReranker, max_length: int) -> ValidationRecord:
    failed_ids = [c.case for c in cases if not c.token_ids_equal]
    ours_bad = [f"{c.case} (documents {c.non_finite})" for c in cases if c.non_finite]
    ref_bad = [c.case for c in cases if not c.non_finite and not np.isfinite(c.spearman)]
    all_finite = not ours_bad and not ref_bad

    def stat(values: list[float], pick: Callable[[list[float]], float]) -> float:
        return pick(values) if values and all(np.isfinite(v) for v in values) else float("nan")

    max_unpadded = stat([c.max_abs_diff_unpadded for c in cases], max)
    max_padded = stat([c.max_abs_diff_padded for c in cases], max)
    spearman_min = stat([c.spearman for c in cases], min)
    pooled = spearman(np.concatenate(pooled_ours), np.concatenate(pooled_ref)) if all_finite else float("nan")
    top1 = sum(c.top1_agrees for c in cases) / len(cases)

    failures = []
    decided_by: DecidedBy
    if failed_ids:
        failures.append(f"token ids differ from the reference in {', '.join(failed_ids)}")
    if ours_bad:
        failures.append(f"the artifact returned NaN/inf scores in {', '.join(ours_bad)}")
    if ref_bad:
        failures.append(f"the reference returned NaN/inf scores in {', '.join(ref_bad)}")
    if manifest.dtype == "fp32":
        decided_by = "max_abs_diff"
        tolerance = Tolerances(max_abs_diff_unpadded=TOL_UNPADDED, max_abs_diff_padded=TOL_PADDED)
        if all_finite:
            if max_unpadded > TOL_UNPADDED:
                failures.append(f"max abs diff unpadded {max_unpadded:.3g} > {TOL_UNPADDED:g}")
            if max_padded > TOL_PADDED:
                failures.append(f"max abs diff padded {max_padded:.3g} > {TOL_PADDED:g}")
            if top1 < 1.0:
                failures.append("top-1 differs in " + ", ".join(c.case for c in cases if not c.top1_agrees))
    else:
        # Pooled over every pair: a single swap of two near-equal scores in a 4-document case
        # would otherwise decide the verdict.
        decided_by = "spearman_pooled"
        tolerance = Tolerances(min_spearman_pooled=MIN_SPEARMAN_REDUCED)
        if all_finite and pooled < MIN_SPEARMAN_REDUCED:
            failures.append(f"pooled Spearman {pooled:.4f} < {MIN_SPEARMAN_REDUCED:g}")
    return ValidationRecord(
        passed=not failures,
        reference=reference.name,
        reference_dtype=str(getattr(reference, "dtype", "fp32")),
        scored_with=f"MxbaiReranker on {reranker.providers[0]} (token-budget batching, "
                    f"max_batch_tokens {reranker.max_batch_tokens})",
        max_length=max_length,
        pairs=sum(c.pairs for c in cases),
        token_ids_equal=not failed_ids,
        all_finite=all_finite,
        max_abs_diff_unpadded=max_unpadded,
        max_abs_diff_padded=max_padded,
        spearman_min=spearman_min,
        spearman_pooled=pooled,
        top1_agreement=top1,
        decided_by=decided_by,
        tolerance=tolerance,
        failures=failures,
        cases=cases,
    )
