"""CPython's own low-level socket tests (Lib/test/test_asyncio/test_sock_lowlevel.py), run against
mioloop.EventLoop: BaseSockTestsMixin exercises every sock_* method over real sockets on loopback
(TCP and Unix), with racing, cancellation, huge transfers, failures and a transport on a socket."""

import unittest
from test.test_asyncio import test_sock_lowlevel
from test.test_asyncio import utils as test_utils

import mioloop


class MioloopSockTests(test_sock_lowlevel.BaseSockTestsMixin, test_utils.TestCase):
    def create_event_loop(self):
        return mioloop.new_event_loop()

