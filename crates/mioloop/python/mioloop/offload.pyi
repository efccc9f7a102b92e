"""Type stubs for `mioloop.offload`: CPU work on Rust worker threads, outside the interpreter, awaited
from asyncio (chapters *The offload pool* and *Cancellation, panics, shutdown and backpressure*).

Each kernel function runs on the running event loop (asyncio's, uvloop's or mioloop's) and returns a
`mioloop.Future`; the work runs on `pool` (the default pool, one worker per core, if None).
Cancelling the awaiting task cancels the job.
"""

import concurrent.futures
from typing_extensions import Buffer as _Buffer  # a bytes-like object
from typing import Any, Callable, TypeVar

from . import Future

_T = TypeVar("_T")

class Pool:
    """A bounded pool of Rust worker threads: `workers` (default: one per core), `capacity` jobs
    waiting for a worker (default: four per worker), `nice` the workers' priority on Linux (0–19;
    at the default 10 the event loop's thread preempts them as soon as it wakes)."""

    def __init__(self, workers: int | None = None, capacity: int | None = None, *, nice: int = 10) -> None: ...
    @property
    def workers(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def queued(self) -> int:
        """Jobs waiting for a worker now."""
    @property
    def running(self) -> int:
        """Jobs on a worker now."""
    @property
    def completed(self) -> int:
        """Jobs finished since the pool started."""
    @property
    def waiting(self) -> int:
        """Callers waiting for room in the queue."""
    @property
    def closed(self) -> bool: ...
    def shutdown(self, wait: bool = True, *, cancel_queued: bool = False) -> None:
        """Stop taking jobs; queued jobs still run unless `cancel_queued`. With `wait`, join the workers."""
    def __enter__(self) -> "Pool": ...
    def __exit__(self, *exc: object) -> None: ...

def default_pool() -> Pool:
    """The pool used when none is given."""

def sha256(data: _Buffer, *, pool: Pool | None = None) -> Future[bytes]:
    """The SHA-256 digest (32 bytes) of a bytes-like object."""

def crc32(data: _Buffer, *, pool: Pool | None = None) -> Future[int]:
    """The CRC-32 of a bytes-like object, as `zlib.crc32(data)`."""

def compress(data: _Buffer, level: int = -1, *, pool: Pool | None = None) -> Future[bytes]:
    """zlib-compressed bytes, as `zlib.compress(data, level)`; `level` -1 or 0–9."""

def count_primes(limit: int, *, pool: Pool | None = None) -> Future[int]:
    """How many primes are below `limit`: CPU work that grows with `limit`."""

def empty(*, pool: Pool | None = None) -> Future[None]:
    """A job that does nothing: the round trip to a worker and back."""

def panics(message: str, *, pool: Pool | None = None) -> Future[None]:
    """A kernel that panics on its worker: the awaiter gets RuntimeError with the message."""

class Executor(concurrent.futures.Executor):
    """`loop.run_in_executor(Executor(), fn, *args)`: Python callables on an offload pool's threads."""

    def __init__(self, max_workers: int | None = None, *, capacity: int | None = None, nice: int = 10) -> None: ...
    @property
    def pool(self) -> Pool: ...
    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]: ...
