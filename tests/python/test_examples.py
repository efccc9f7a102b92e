"""Every program in examples/ runs on its own, as the chapters that cite it promise."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

PYTHON_EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
RUST_EXAMPLES = sorted((ROOT / "examples").glob("*.rs"))


@pytest.mark.parametrize("program", PYTHON_EXAMPLES, ids=lambda p: p.name)
def test_python_example_runs(program):
    subprocess.run([sys.executable, program], check=True, capture_output=True, timeout=120)


@pytest.mark.parametrize("program", RUST_EXAMPLES, ids=lambda p: p.name)
def test_rust_example_runs(program):
    subprocess.run(["cargo", "run", "--quiet", "--example", program.stem], cwd=ROOT, check=True,
                   capture_output=True, timeout=600, env=dict(os.environ))


def test_there_are_examples():
    assert PYTHON_EXAMPLES and RUST_EXAMPLES
