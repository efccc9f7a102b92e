"""Shared fixtures for the tests of the whole that run in Python: the package, the rendered book, CI files."""

import asyncio
import functools
import http.server
import pathlib
import threading

import pytest

import mioloop

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The loops a test using the `run` fixture runs on; a test module may name its own `LOOPS`.
LOOPS = {"asyncio": asyncio.new_event_loop, "mioloop": mioloop.new_event_loop}


def pytest_generate_tests(metafunc):
    """`run` is parametrized over the module's LOOPS (or the default ones), one test per loop."""
    if "loop_factory" in metafunc.fixturenames:
        loops = getattr(metafunc.module, "LOOPS", LOOPS)
        metafunc.parametrize("loop_factory", [loops[name] for name in sorted(loops)], ids=sorted(loops))


@pytest.fixture
def run(loop_factory):
    """Runs a coroutine function to completion on a fresh loop of each kind."""

    def run(main):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main())

    return run
BOOK = ROOT / "target" / "book"


@pytest.fixture(scope="session")
def built_book():
    """The HTML that `scripts/book --build` wrote; scripts/test builds it before running pytest."""
    if not (BOOK / "index.html").exists():
        pytest.fail("target/book is missing: run `scripts/book --build` first (scripts/test does)")
    return BOOK


@pytest.fixture(scope="session")
def book_url(built_book):
    """The built book served on 127.0.0.1, on a port the OS picks."""
    handler = functools.partial(QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def pytest_collection_modifyitems(items):
    """Every test runs under a time limit, so a hang is a failure: 300 s unless it sets its own."""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(300))
