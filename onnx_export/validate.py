"""Export-time validation: the artifact against the reference library on built-in cases.

The reference is the library users already trust: sentence-transformers ``CrossEncoder`` for v1
and ``mxbai_rerank.MxbaiRerankV2`` for v2, run on the same checkpoint in float32. Token ids must be
equal; scores are compared unpadded (one pair at a time on both sides) and padded (a whole case
as one batch on both sides), and rankings are compared per case.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mxbai_integrations.artifact import MODEL_NAME, TOKENIZER_NAME, Manifest
from mxbai_integrations.prompt import V1PairEncoder, V2PromptEncoder

TOL_UNPADDED = 1e-4
TOL_PADDED = 1e-3
# Reduced-precision artifacts are refused only when clearly broken; their drift is recorded.
MIN_SPEARMAN_REDUCED = 0.95
# Long cases exercise truncation; validating at a shorter length keeps export-time CPU cost low.
VALIDATION_MAX_LENGTH = 256

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


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return 1.0
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return 1.0 if denom == 0 else float((ra * rb).sum() / denom)


def _pad(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    width += -width % 8
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


class _Reference:
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

            self.name = f"mxbai-rerank {importlib.metadata.version('mxbai-rerank')} MxbaiRerankV2"
            self.model = MxbaiRerankV2(source, device="cpu", torch_dtype=torch.float32, max_length=max_length, **kw)
            self.tokenizer = self.model.tokenizer

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


def validate_artifact(artifact_dir: Path, manifest: Manifest, source: str, *, revision: str | None = None) -> dict:
    """Compare the artifact's graph with the reference; return the manifest's validation record."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    max_length = min(VALIDATION_MAX_LENGTH, manifest.max_length)
    ref = _Reference(manifest.family, source, max_length, revision)
    tokenizer = Tokenizer.from_file(str(artifact_dir / TOKENIZER_NAME))
    if manifest.family == "v1":
        v1 = V1PairEncoder(tokenizer, max_length)

        def encode(c: Case) -> list[list[int]]:
            return v1.encode(c.query, c.documents)
    else:
        assert manifest.prompt is not None
        v2 = V2PromptEncoder(tokenizer, manifest.prompt, max_length)

        def encode(c: Case) -> list[list[int]]:
            return v2.encode(c.query, c.documents, instruction=c.instruction)

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(artifact_dir / MODEL_NAME), opts, providers=["CPUExecutionProvider"])

    def run(rows: list[list[int]]) -> np.ndarray:
        ids, mask = _pad(rows, manifest.pad_token_id)
        raw = session.run(["score"], {"input_ids": ids, "attention_mask": mask})[0].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-raw)) if manifest.score.activation == "sigmoid" else raw

    per_case, ids_equal = [], True
    pooled_ours: list[np.ndarray] = []
    pooled_ref: list[np.ndarray] = []
    max_unpadded = max_padded = 0.0
    spearmen, top1 = [], []
    for case in CASES:
        if case.instruction and manifest.family == "v1":
            continue
        ours_ids = encode(case)
        same_ids = ours_ids == ref.ids(case)
        ids_equal &= same_ids
        ours_single = np.concatenate([run([r]) for r in ours_ids])
        ours_batch = run(ours_ids)
        ref_single = ref.scores(case, padded=False)
        ref_batch = ref.scores(case, padded=True)
        d_unpadded = float(np.max(np.abs(ours_single - ref_single)))
        d_padded = float(np.max(np.abs(ours_batch - ref_batch)))
        rho = _spearman(ours_batch, ref_single)
        same_top1 = int(np.argmax(ours_batch)) == int(np.argmax(ref_single))
        max_unpadded, max_padded = max(max_unpadded, d_unpadded), max(max_padded, d_padded)
        spearmen.append(rho)
        pooled_ours.append(ours_batch)
        pooled_ref.append(ref_single)
        top1.append(same_top1)
        per_case.append({"case": case.name, "pairs": len(case.documents), "token_ids_equal": same_ids,
                         "max_abs_diff_unpadded": d_unpadded, "max_abs_diff_padded": d_padded,
                         "spearman": rho, "top1_agrees": same_top1})

    pooled_rho = _spearman(np.concatenate(pooled_ours), np.concatenate(pooled_ref))
    if manifest.dtype == "fp32":
        passed = ids_equal and max_unpadded <= TOL_UNPADDED and max_padded <= TOL_PADDED and all(top1)
    else:
        # Pooled over every pair: a single swap of two near-equal scores in a 4-document case
        # would otherwise decide the verdict.
        passed = ids_equal and pooled_rho >= MIN_SPEARMAN_REDUCED
    return {
        "reference": ref.name,
        "reference_dtype": "fp32",
        "max_length": max_length,
        "cases": per_case,
        "pairs": sum(c["pairs"] for c in per_case),
        "token_ids_equal": ids_equal,
        "max_abs_diff_unpadded": max_unpadded,
        "max_abs_diff_padded": max_padded,
        "spearman_min": min(spearmen),
        "spearman_pooled": pooled_rho,
        "top1_agreement": sum(top1) / len(top1),
        "tolerance": {"unpadded": TOL_UNPADDED, "padded": TOL_PADDED} if manifest.dtype == "fp32"
        else {"spearman_pooled": MIN_SPEARMAN_REDUCED},
        "passed": bool(passed),
    }
