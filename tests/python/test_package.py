"""The companion package as a reader gets it: `pip install ./crates/mioloop` in a fresh virtual environment."""

import os
import pathlib
import subprocess
import sys
import venv

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
        "print(mioloop.__version__, (files / 'py.typed').is_file(), (files / '__init__.pyi').is_file())"
    )
    shown = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    assert shown == [workspace_version(), "True", "True"]


def workspace_version():
    for line in (ROOT / "Cargo.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise AssertionError("no version in Cargo.toml")


def test_the_stub_declares_what_the_module_has():
    """Every public name in the stub exists in the module, and the reverse."""
    import mioloop

    stub = (ROOT / "crates" / "mioloop" / "mioloop.pyi").read_text()
    declared = {line.split(":")[0].split("(")[0].removeprefix("def ").strip() for line in stub.splitlines()
                if line and not line.startswith((" ", '"', "#", "from ", "import "))}
    # maturin's package __init__ re-exports the extension module, which it also names `mioloop`.
    present = {name for name in dir(mioloop) if not name.startswith("_")} - {"mioloop"} | {"__version__"}
    assert declared == present, (declared, present)
