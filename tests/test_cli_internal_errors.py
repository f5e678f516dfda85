"""mxbai_integrations.cli.errors, internal errors: a bug is exit 1 and one line, the traceback under -v.

An exception the CLI did not expect (a ValueError from inside numpy, an IndexError) is a bug, not
the user's mistake: it must never escape ``main()``, must print one line naming it, and must show
the traceback only with -v, while a ValueError from our own argument checks stays a usage error
(exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_edits import DOCS, QUERY

from mxbai_integrations import MxbaiReranker, cli


def test_cli_internal_error_is_exit_1_with_traceback_only_under_verbose(
    v1_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    args = ["rerank", str(v1_artifact), "--query", QUERY, str(docs), "--providers", "cpu"]

    def broken_rank(self: MxbaiReranker, *a: Any, **k: Any) -> Any:
        return np.zeros(3) + np.zeros(4)  # a ValueError from inside numpy: a bug, not the user's mistake

    monkeypatch.setattr(MxbaiReranker, "rank", broken_rank)
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mxbai-onnx: error: internal error: ValueError")
    assert "rerun with -v" in lines[0] and "Traceback" not in err
    assert cli.main(["-v", *args]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "broken_rank" in err

    monkeypatch.setattr(MxbaiReranker, "rank", lambda self, *a, **k: [][0])  # IndexError: never escapes main()
    assert cli.main(args) == 1
    assert "internal error: IndexError" in capsys.readouterr().err
    # a ValueError our own argument checks raise is still a usage error
    monkeypatch.undo()
    assert cli.main([*args, "--instruction", "only v2 has instructions"]) == 2
    assert "v2" in capsys.readouterr().err
