"""CI, full environment: export tiny v1/v2 artifacts and record their scores for the run-time-only environment.

    python .ci/runtime_only_artifacts.py DIR

tests/test_runtime_only.py (run in an environment with only the base install) loads DIR's
artifacts and checks it gets the same scores with no torch or transformers installed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from random_models import build_v1_checkpoint, build_v2_checkpoint  # noqa: E402

from mxbai_integrations import MxbaiReranker  # noqa: E402
from onnx_export import export_model  # noqa: E402

QUERY = "Which river crosses Paris?"
DOCUMENTS = ["The Seine crosses Paris.", "Berlin lies on the Spree.", "ﬁnance report", "", "x² + y²"]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, build in (("v1", build_v1_checkpoint), ("v2", build_v2_checkpoint)):
        artifact = export_model(build(out / "checkpoints" / name), out / name, progress=False, force=True)
        scores[name] = {"query": QUERY, "documents": DOCUMENTS,
                        "scores": MxbaiReranker(artifact, providers=["cpu"]).score(QUERY, DOCUMENTS)}
    (out / "scores.json").write_text(json.dumps(scores, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
