"""CPython's own event loop tests (Lib/test/test_asyncio/test_events.py), run against mioloop.EventLoop.

EventLoopTestsMixin covers the whole loop: callbacks, timers, threads, executors, readers and
writers, running, stopping and closing, and (since Part VI) connections, servers, SSL, Unix
sockets, datagrams, pipes, ptys and signals; SubprocessTestsMixin adds subprocesses. The class is
built exactly as CPython's own EPollEventLoopTests (with its Unix child watcher), with mioloop's
loop. Every test runs; one skips itself because it inspects the internals of asyncio's own
selector loop (test_internal_fds).
"""

import asyncio
import sys
from test.test_asyncio import test_events
from test.test_asyncio import utils as test_utils

import mioloop

ALL = sorted(name for name in dir(test_events.EventLoopTestsMixin) if name.startswith("test_"))
SUBPROCESS = sorted(name for name in dir(test_events.SubprocessTestsMixin) if name.startswith("test_"))


class MioloopEventLoopTests(test_events.UnixEventLoopTestsMixin, test_events.SubprocessTestsMixin, test_utils.TestCase):
    def create_event_loop(self):
        return mioloop.new_event_loop()


def test_the_suite_is_the_one_the_book_counts():
    if sys.version_info[:2] == (3, 11):  # the counts the book reports are CPython 3.11's
        assert (len(ALL), len(SUBPROCESS)) == (59, 14)


def test_timeout_rounding_does_not_spin():
    """Sleeps shorter than the selector's millisecond resolution still cost a few turns, not a spin."""
    loop = mioloop.new_event_loop()
    turns = 0
    run_once = loop._run_once

    def counting_run_once():
        nonlocal turns
        turns += 1
        run_once()

    loop._run_once = counting_run_once

    async def sleeps():
        for delay in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10):
            await asyncio.sleep(delay)

    try:
        loop.run_until_complete(sleeps())
    finally:
        loop.close()
    assert turns <= 20, turns
