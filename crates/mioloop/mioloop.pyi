"""Type stubs for `mioloop`, the companion package of *Under the Await*."""

__version__: str
