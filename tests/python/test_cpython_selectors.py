"""CPython's own selector tests (Lib/test/test_selectors.py), run against mioloop.selectors.MioSelector.

Every test of BaseSelectorTestCase and ScalableSelectorMixIn runs. One skips itself:
test_modify_unregister patches the standard library's private `_selector_cls` attribute, which only
the stdlib's poll-like selectors have, and skips any other selector class.
"""

import selectors
import unittest
from collections.abc import Mapping
from test import test_selectors

import mioloop.selectors


class MioSelectorTestCase(test_selectors.BaseSelectorTestCase, test_selectors.ScalableSelectorMixIn,
                          unittest.TestCase):
    SELECTOR = mioloop.selectors.MioSelector


def test_it_is_a_selector_and_its_map_a_mapping():
    with mioloop.selectors.DefaultSelector() as selector:
        assert isinstance(selector, selectors.BaseSelector)
        assert isinstance(selector.get_map(), Mapping)
    assert mioloop.selectors.EVENT_READ == selectors.EVENT_READ
    assert mioloop.selectors.EVENT_WRITE == selectors.EVENT_WRITE
    assert mioloop.selectors.SelectorKey is selectors.SelectorKey
