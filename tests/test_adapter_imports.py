"""Both adapters: a missing extra is one actionable ImportError, and importing loads no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

ADAPTERS = [
    ("mxbai_integrations.langchain", "langchain_core", "langchain"),
    ("mxbai_integrations.llama_index", "llama_index.core", "llama-index"),
]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("module, framework, extra", ADAPTERS)
def test_missing_extra_raises_an_import_error_naming_it(module: str, framework: str, extra: str) -> None:
    proc = _run(textwrap.dedent(f"""
        import sys
        sys.modules[{framework!r}] = None  # makes `import {framework}` fail
        try:
            import {module}
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
    """))
    assert f'pip install "mxbai-integrations[{extra}]"' in proc.stdout


@pytest.mark.parametrize("module, framework, extra", ADAPTERS)
def test_import_pulls_in_no_torch(module: str, framework: str, extra: str) -> None:
    """The adapters are run time: importing them must not load torch, transformers or optimum."""
    proc = _run(f"import sys, {module}; "
                "print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))")
    assert proc.stdout.strip() == "[]"
