"""CPython 3.11's own asyncio suites, run against mioloop.EventLoop (Part VI, *How we test a loop*).

Two ways in, as the suites allow:
- suites whose test classes make their loop in `new_loop()` or `create_event_loop()` get a subclass
  that returns `mioloop.new_event_loop()`: test_sendfile, test_server, test_buffered_proto,
  test_sslproto (start_tls);
- suites that make loops through asyncio's policy (`asyncio.new_event_loop()`, `asyncio.run`,
  `IsolatedAsyncioTestCase`) run with `mioloop.EventLoopPolicy` installed around each test:
  test_streams, test_ssl, test_subprocess (every child watcher), test_locks, test_queues,
  test_taskgroups, test_timeouts, test_waitfor.
Each test runs under a timeout, so a hang is a failure. No test is excluded; the suites' own
skips (Windows, proactor, missing features) stay as they are.
"""

import asyncio
import unittest
from test.test_asyncio import (
    test_buffered_proto,
    test_locks,
    test_queues,
    test_sendfile,
    test_server,
    test_ssl,
    test_sslproto,
    test_streams,
    test_subprocess,
    test_taskgroups,
    test_timeouts,
    test_waitfor,
)

from test.test_asyncio import utils as test_utils

import pytest

import mioloop

pytestmark = pytest.mark.timeout(120)


class OwnLoop:
    """For classes that ask `new_loop()` / `create_event_loop()` for their loop."""

    def new_loop(self):
        return mioloop.new_event_loop()

    def create_event_loop(self):
        return mioloop.new_event_loop()


class MioloopPolicy:
    """Installs mioloop's policy around each test (the suites reset the policy when they finish)."""

    def run(self, result=None):
        asyncio.set_event_loop_policy(mioloop.EventLoopPolicy())
        # The state a suite's earlier tests leave in the policy they share: set_event_loop has been
        # called, so get_event_loop() in the main thread raises instead of making a loop. CPython
        # 3.12's test_create_subprocess_with_pidfd relies on it (it fails alone on asyncio's loop too).
        asyncio.set_event_loop(None)
        try:
            return super().run(result)
        finally:
            asyncio.set_event_loop_policy(None)


class MioloopSendfileTests(OwnLoop, test_sendfile.SendfileTestsBase, test_utils.TestCase):
    pass


class MioloopStartServerTests(OwnLoop, test_server.SelectorStartServerTests):
    pass


class MioloopBufferedProtocolTests(OwnLoop, test_buffered_proto.BufferedProtocolSelectorTests):
    pass


class MioloopStartTLSTests(OwnLoop, test_sslproto.SelectorStartTLSTests):
    pass


POLICY_SUITES = (test_streams, test_ssl, test_sslproto, test_subprocess, test_locks, test_queues, test_taskgroups, test_timeouts, test_waitfor)
POLICY_EXCEPT = {test_sslproto.BaseStartTLS, test_sslproto.SelectorStartTLSTests, test_sslproto.ProactorStartTLSTests}


def policy_classes(module):
    """The module's own TestCase classes that make loops through the policy."""
    for name, value in vars(module).items():
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and value.__module__ == module.__name__ and value not in POLICY_EXCEPT:
            yield name, value


for _module in POLICY_SUITES:
    for _name, _case in policy_classes(_module):
        _short = _module.__name__.rsplit(".", 1)[1]
        globals()[f"Mioloop_{_short}_{_name}"] = type(f"Mioloop_{_short}_{_name}", (MioloopPolicy, _case), {})
del _module, _name, _case, _short  # or pytest would collect the last original class too


class PolicyIsInstalledTests(MioloopPolicy, unittest.TestCase):
    def test_loops_made_through_the_policy_are_mioloop(self):
        loop = asyncio.new_event_loop()
        try:
            self.assertIsInstance(loop, mioloop.EventLoop)
        finally:
            loop.close()

    def test_isolated_asyncio_test_cases_run_on_mioloop(self):
        class Probe(MioloopPolicy, unittest.IsolatedAsyncioTestCase):
            async def test_loop(self):
                self.assertIsInstance(asyncio.get_running_loop(), mioloop.EventLoop)

        result = unittest.TestResult()
        Probe("test_loop").run(result)
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
