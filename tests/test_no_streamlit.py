"""metarec_core must never import streamlit (pages adapt the core, not the other way round)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import metarec_core

ROOT = Path(metarec_core.__file__).parent
_IMPORT = re.compile(r"^\s*(import\s+streamlit|from\s+streamlit)\b", re.M)


def _modules() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


def test_no_streamlit_import_statements():
    offenders = [str(p) for p in ROOT.rglob("*.py") if _IMPORT.search(p.read_text())]
    assert offenders == []


@pytest.mark.slow
def test_importing_every_module_does_not_load_streamlit():
    code = (
        "import importlib, sys\n"
        f"for name in {_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'streamlit' not in sys.modules, 'streamlit was imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
