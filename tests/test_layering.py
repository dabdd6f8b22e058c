"""Layering: serving never imports training, the job runner never imports the services."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "metarec_core"
SERVING = ("model.py", "recommend.py", "net.py", "baselines.py", "scoring.py", "maml.py")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (absolute names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("name", SERVING)
def test_serving_modules_do_not_import_training(name):
    imports = imported_modules(ROOT / "coldstart" / name)
    assert not {m for m in imports if m.startswith("metarec_core.coldstart.train")}


@pytest.mark.slow
def test_loading_the_serving_modules_leaves_training_unimported():
    code = (
        "import sys; import metarec_core.coldstart.model, metarec_core.coldstart.recommend; "
        "print('metarec_core.coldstart.train' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_job_runner_does_not_import_the_services():
    imports = imported_modules(ROOT / "jobs.py") | imported_modules(ROOT / "registry.py")
    assert not {m for m in imports if m.startswith("metarec_core.services")}
    assert not {m for m in imported_modules(ROOT / "training.py") if "services" in m}
