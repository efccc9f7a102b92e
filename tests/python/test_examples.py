"""Every program in examples/ runs on its own, as the chapters that cite it promise."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

PYTHON_EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
RUST_EXAMPLES = sorted((ROOT / "examples").glob("*.rs"))
TOYLOOP_MODULES = sorted(p.stem for p in (ROOT / "examples" / "toyloop").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("program", PYTHON_EXAMPLES, ids=lambda p: p.name)
def test_python_example_runs(program):
    subprocess.run([sys.executable, program], check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("module", TOYLOOP_MODULES)
def test_toyloop_stage_runs(module):
    """Part II's staged loop: each module's demo, as `python -m toyloop.<module>` from examples/."""
    subprocess.run([sys.executable, "-m", f"toyloop.{module}"], cwd=ROOT / "examples", check=True,
                   capture_output=True, timeout=120)


@pytest.mark.parametrize("program", RUST_EXAMPLES, ids=lambda p: p.name)
def test_rust_example_runs(program):
    subprocess.run(["cargo", "run", "--quiet", "--example", program.stem], cwd=ROOT, check=True,
                   capture_output=True, timeout=600, env=dict(os.environ))


def test_there_are_examples():
    assert PYTHON_EXAMPLES and RUST_EXAMPLES and len(TOYLOOP_MODULES) == 7
