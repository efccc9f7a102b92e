"""The companion package as a reader gets it: `pip install ./crates/mioloop` in a fresh virtual environment."""

import ast
import importlib
import os
import subprocess
import venv

import pytest

from conftest import ROOT


def test_pip_install_in_a_fresh_venv_then_import(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # maturin gets its own target folder, so it never invalidates the debug build `cargo test` uses.
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target" / "maturin"))
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", ROOT / "crates" / "mioloop"],
        check=True,
        env=env,
    )
    probe = (
        "import importlib.resources, mioloop; "
        "files = importlib.resources.files('mioloop'); "
        "print(mioloop.__version__, *((files / name).is_file() for name in ('py.typed', '__init__.pyi', 'selectors.pyi')))"
    )
    shown = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert shown == [workspace_version(), "True", "True", "True"]


def workspace_version():
    for line in (ROOT / "Cargo.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in Cargo.toml")


STUBS = ROOT / "crates" / "mioloop" / "python" / "mioloop"


def public_names_in_stub(path):
    """Top-level public names a .pyi declares: definitions, annotations, assignments and re-exports."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname for a in node.names if a.asname == a.name)  # `import x as x` re-exports
    return {n for n in names if not n.startswith("_") or n == "__version__"}


@pytest.mark.parametrize("stub", sorted(STUBS.glob("*.pyi")), ids=lambda p: p.name)
def test_each_stub_declares_exactly_what_its_module_has(stub):
    module = importlib.import_module("mioloop" if stub.stem == "__init__" else f"mioloop.{stub.stem}")
    present = {n for n in dir(module) if not n.startswith("_")} - {"mioloop"} | {"__version__"} & set(dir(module))
    assert public_names_in_stub(stub) == present
