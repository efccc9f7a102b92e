# The Python half of mioloop.offload: a concurrent.futures.Executor whose threads are the Rust
# workers of an offload Pool (crates/pymodule/src/offload.rs). Run by the module's init with
# `Pool` in its namespace.
import concurrent.futures


class Executor(concurrent.futures.Executor):
    """`loop.run_in_executor(Executor(), fn, *args)`: Python callables on an offload pool's threads.

    A callable holds the GIL while it runs, as on any thread; what it gains is what it releases
    (hashlib, zlib, file and socket I/O). For CPU work in Rust, await the module's kernels instead.
    `max_workers` defaults to one per core; `capacity` bounds the queue (unbounded by default, as
    in ThreadPoolExecutor), and a full queue makes `submit` wait with the GIL released; `nice` is
    the threads' priority, as for `Pool`.
    """

    def __init__(self, max_workers=None, *, capacity=None, nice=10):
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._pool = Pool(max_workers, capacity if capacity is not None else 1 << 40, nice=nice)
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        future = concurrent.futures.Future()
        self._pool._submit_call(future, fn, args, kwargs or None)
        return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._shutdown = True
        self._pool.shutdown(wait, cancel_queued=cancel_futures)

    @property
    def pool(self):
        """The `Pool` whose threads run the calls."""
        return self._pool

    def __repr__(self):
        return f"<mioloop.offload.Executor {self._pool!r}>"
