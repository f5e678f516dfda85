"""mxbai_integrations.cli.rerank: ``mxbai-onnx rerank`` ranks like the reference library.

The command reads documents from a file and prints JSON rows; its order and scores are compared
with mxbai_rerank's own ``rank``, never with the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_edits import DOCS, QUERY

from mxbai_integrations import cli


def test_cli_rerank_matches_the_reference_library(
    v2_artifact: Path, v2_reference: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    assert cli.main(["rerank", str(v2_artifact), "--query", QUERY, str(docs), "--json", "--providers", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ref = v2_reference.rank(QUERY, DOCS, return_documents=True)
    assert [r["index"] for r in rows] == [int(r.index) for r in ref]
    np.testing.assert_allclose([r["score"] for r in rows], [float(r.score) for r in ref], atol=1e-3, rtol=0)
