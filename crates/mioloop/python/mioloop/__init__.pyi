"""Type stubs for `mioloop`, the companion package of *Under the Await*."""

from . import selectors as selectors

__version__: str
