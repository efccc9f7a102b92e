"""mioloop.EventLoop as a user meets it: the ways to get one, bad input, errors in callbacks, signals,
and nothing lost or leaked on close. (CPython's own tests of it are in test_cpython_events.py.)"""

import asyncio
import contextvars
import gc
import os
import signal
import socket
import sys
import threading
import time
import weakref

import pytest

import mioloop


@pytest.fixture
def loop():
    loop = mioloop.new_event_loop()
    yield loop
    loop.close()


def test_three_ways_to_run_on_it():
    async def which():
        return type(asyncio.get_running_loop()).__name__

    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        assert runner.run(which()) == "EventLoop"
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(mioloop.EventLoopPolicy())
    try:
        assert asyncio.run(which()) == "EventLoop"
    finally:
        asyncio.set_event_loop_policy(policy)
    loop = mioloop.EventLoop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert loop.run_until_complete(which()) == "EventLoop"
    finally:
        loop.close()


def test_bad_callbacks_are_refused_as_asyncio_refuses_them(loop):
    with pytest.raises(TypeError, match="a callable object was expected by call_soon"):
        loop.call_soon(42)

    async def coroutine_function():
        pass

    coroutine = coroutine_function()
    with pytest.raises(TypeError, match=r"coroutines cannot be used with call_at\(\)"):  # call_later calls call_at, as in asyncio
        loop.call_later(0, coroutine)
    coroutine.close()
    with pytest.raises(TypeError, match="delay must not be None"):
        loop.call_later(None, print)
    with pytest.raises(TypeError, match="when cannot be None"):
        loop.call_at(None, print)
    loop.set_debug(True)
    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(coroutine_function)  # a coroutine *function* is refused in debug mode, as in asyncio


def test_a_closed_loop_refuses_work(loop):
    loop.close()
    loop.close()  # idempotent
    for schedule in (lambda: loop.call_soon(print), lambda: loop.call_later(1, print),
                     lambda: loop.call_at(1, print), lambda: loop.call_soon_threadsafe(print),
                     lambda: loop.add_reader(0, print), loop.run_forever):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            schedule()
    assert loop.remove_reader(0) is False


def test_running_twice_and_closing_while_running_are_refused_as_asyncio_refuses_them():
    def errors_on(loop):
        errors = []

        def nested():
            for attempt in (loop.run_forever, loop.close):
                try:
                    attempt()
                except RuntimeError as e:
                    errors.append(str(e))
            loop.stop()

        loop.call_soon(nested)
        loop.run_forever()
        loop.close()
        return errors

    on_asyncio = errors_on(asyncio.new_event_loop())
    if sys.version_info < (3, 13):
        assert on_asyncio == ["This event loop is already running", "Cannot close a running event loop"]
    # asyncio 3.13.0's run_forever clears the running state when a nested call fails, so the close
    # that follows succeeds; run_forever is asyncio's on mioloop too, which does the same.
    assert errors_on(mioloop.new_event_loop()) == on_asyncio


def test_an_exception_in_a_callback_goes_to_the_handler_and_the_loop_goes_on(loop):
    seen = []
    loop.set_exception_handler(lambda loop, context: seen.append(context))

    def broken():
        raise ValueError("boom")

    handle = loop.call_soon(broken)
    loop.call_soon(seen.append, "after")
    loop.call_soon(loop.stop)
    loop.run_forever()
    context, after = seen
    assert after == "after"
    assert context["message"].startswith("Exception in callback test_an_exception_in_a_callback")
    assert isinstance(context["exception"], ValueError) and context["handle"] is handle


def test_keyboard_interrupt_stops_the_loop_and_loses_no_callback(loop):
    ran = []

    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    loop.call_soon(ran.append, "scheduled in the same turn")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert ran == ["scheduled in the same turn"]


def test_ctrl_c_reaches_a_loop_asleep_with_nothing_to_do(loop):
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()  # nothing scheduled: it sleeps until the signal
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 5


def test_handles_look_like_asyncios(loop):
    def callback(x):
        pass

    reference = asyncio.new_event_loop()
    try:
        assert repr(loop.call_soon(callback, 1)) == repr(reference.call_soon(callback, 1))
        ours, theirs = loop.call_soon(callback, 2), reference.call_soon(callback, 2)
        ours.cancel()
        theirs.cancel()
        assert repr(ours) == repr(theirs) == "<Handle cancelled>"
        timer = loop.call_at(12.5, callback, 3)
        assert repr(timer) == repr(reference.call_at(12.5, callback, 3))
        assert timer.when() == 12.5 and not timer.cancelled()
    finally:
        reference.close()


def test_call_soon_reads_its_arguments_as_python_would(loop):
    """call_soon and call_soon_threadsafe are C methods reading their arguments in place: the
    signature, and every mistake, as a Python `def call_soon(self, callback, *args, context=None)`."""
    import inspect

    for method in (loop.call_soon, loop.call_soon_threadsafe):
        assert str(inspect.signature(method)) == "(callback, *args, context=None)"
        name = method.__name__
        with pytest.raises(TypeError, match=rf"^{name}\(\) missing 1 required positional argument: 'callback'$"):
            method()
        with pytest.raises(TypeError, match=rf"^{name}\(\) got multiple values for argument 'callback'$"):
            method(print, callback=print)
        with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'delay'$"):
            method(print, delay=1)
        with pytest.raises(TypeError, match=rf"a callable object was expected by {name}\(\), got 1"):
            method(1)
    with pytest.raises(TypeError, match="descriptor 'call_soon' .* doesn't apply to a 'list' object"):
        type(loop).call_soon([], print)
    with socket.socket() as sock, pytest.raises(TypeError, match=r"^_sock_recv_native\(\) takes exactly 2 arguments \(1 given\)$"):
        loop._sock_recv_native(sock)
    var = contextvars.ContextVar("var", default="default")
    context = contextvars.copy_context()
    context.run(var.set, "given")
    seen = []
    loop.call_soon(lambda *args: seen.append((args, var.get())), 1, 2)
    loop.call_soon(callback=lambda: seen.append(((), var.get())))
    loop.call_soon(lambda: seen.append(((), var.get())), context=context)
    loop.call_soon_threadsafe(lambda a: seen.append(((a,), var.get())), 3, context=None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [((1, 2), "default"), ((), "default"), ((), "given"), ((3,), "default")]


def test_handles_are_reused_without_a_trace_of_their_past(loop):
    """Freed handles are kept for the next ones: a recycled handle is a new object (weak references
    to the old one are dead, and their callbacks ran), untracked like any one-shot handle, and other
    handle classes (TimerHandle, a subclass) are never mixed in."""
    notified = []
    old = [loop.call_soon(print, i) for i in range(100)]
    references = [weakref.ref(handle, notified.append) for handle in old]
    for handle in old:
        handle.cancel()
    timers = [loop.call_later(3600, print) for _ in range(50)]
    for timer in timers:
        timer.cancel()
    del old, handle, timers, timer
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert all(reference() is None for reference in references) and len(notified) == 100
    new = [loop.call_soon(print, i) for i in range(150)]
    assert all(type(handle) is mioloop.Handle and not gc.is_tracked(handle) for handle in new)
    assert all(not handle.cancelled() and handle._args == (i,) for i, handle in enumerate(new))
    assert {type(loop.call_later(1, print)) for _ in range(10)} == {mioloop.TimerHandle}
    again = weakref.ref(new[0], notified.append)  # a recycled handle's weak-reference list starts empty
    assert again() is new[0] and len(notified) == 100
    for handle in new:
        handle.cancel()
    del new, handle
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert again() is None and notified[-1] is again
    gc.collect()


def test_freed_handles_are_kept_up_to_a_bound(loop):
    """Up to 524,288 freed handles are kept for the next ones (the backlog a burst of
    call_soon_threadsafe leaves): a second burst of 600,000 takes the kept ones and makes only the
    rest anew, and once it is freed as many stay kept as before, not more."""

    def burst():
        # From an empty context, so that the handles hold no context objects to count.
        handles = contextvars.Context().run(lambda: [loop.call_soon(print) for _ in range(600_000)])
        for handle in handles:
            handle.cancel()
        return handles

    del burst()[:]  # fills the list, whatever earlier tests left in it
    loop.call_soon(loop.stop)
    loop.run_forever()  # the cancelled handles leave the ready queue
    gc.collect()
    full = sys.getallocatedblocks()
    again = burst()
    made = sys.getallocatedblocks() - full
    assert 600_000 - 524_288 - 1000 < made < 600_000 - 524_288 + 5000, made
    del again[:]
    loop.call_soon(loop.stop)
    loop.run_forever()
    gc.collect()
    assert abs(sys.getallocatedblocks() - full) < 1000


def test_handles_freed_outside_the_loop_and_at_exit_let_go_cleanly():
    """A handle's last reference may go in plain Python code or while the interpreter shuts down
    (an unclosed loop in a module global): its deallocator must let go of what it holds there too,
    without pyo3's bookkeeping (CPython 3.13 refuses to attach a thread while it finalizes)."""
    import subprocess
    import textwrap

    program = textwrap.dedent("""
        import socket, weakref
        import mioloop

        class Payload:
            pass

        loop = mioloop.new_event_loop()
        payload = Payload()
        alive = weakref.ref(payload)
        handle = loop.call_soon(print, payload)
        handle.cancel()
        del handle, payload
        assert alive() is None, "a cancelled handle freed by del keeps nothing"
        left, right = socket.socketpair()
        loop.add_reader(left, print, "never")
        kept = [loop.call_soon(print, i) for i in range(3)] + [loop.call_later(3600, print)]
        print("exiting with the loop open")
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "exiting with the loop open\n"


def test_cancelled_handles_do_not_run_even_when_cancelled_from_another_thread(loop):
    ran = []
    loop.call_soon(ran.append, "cancelled").cancel()
    timer = loop.call_later(0.1, ran.append, "cancelled while the loop sleeps")
    threading.Timer(0.02, timer.cancel).start()
    loop.call_later(0.2, loop.stop)
    loop.run_forever()
    assert ran == []


def test_readers_are_level_triggered_and_removable(loop):
    left, right = socket.socketpair()
    calls = []

    def on_readable():
        calls.append(len(calls))
        if len(calls) == 3:
            assert loop.remove_reader(left) is True
            loop.call_soon(loop.stop)

    with left, right:
        right.send(b"x")  # never read: reported on every turn
        loop.add_reader(left, on_readable)
        loop.run_forever()
        assert calls == [0, 1, 2]
        assert loop.remove_reader(left) is False


def test_close_drops_pending_callbacks_and_leaks_no_descriptor():
    class Payload:
        pass

    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    payload = Payload()
    alive = weakref.ref(payload)
    loop = mioloop.new_event_loop()
    loop.call_soon(print, payload)
    loop.call_later(3600, print, payload)
    del payload
    loop.close()
    gc.collect()
    assert alive() is None, "a closed loop keeps nothing alive"
    loops = [mioloop.new_event_loop() for _ in range(50)]
    for each in loops:
        each.close()
    assert open_fds() == before


@pytest.mark.parametrize("end", ["run", "cancel", "close"])
def test_a_handle_never_keeps_a_cycle_alive(end):
    """Handles that run once are not tracked by the garbage collector; they must let go of their
    callback when they run, are cancelled, or their loop closes, or a cycle through them would leak."""

    class Owner:
        def tick(self):
            pass

    loop = mioloop.new_event_loop()
    owner = Owner()
    owner.handle = loop.call_later(0 if end == "run" else 3600, owner.tick)  # owner -> handle -> owner
    alive = weakref.ref(owner)
    del owner
    if end == "run":
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
    elif end == "cancel":
        alive().handle.cancel()
    loop.close()
    gc.collect()
    assert alive() is None


def test_contexts_survive_every_way_a_handle_ends():
    """Handles untrack the context they copy while they hold it; it must be tracked again before
    anyone else sees it or it is freed (CPython frees contexts assuming they are tracked)."""
    var = contextvars.ContextVar("var")
    loop = mioloop.new_event_loop()
    seen, shared = [], []
    var.set("scheduled")
    for i in range(2000):
        handle = loop.call_soon(lambda: seen.append(var.get()))
        if i % 3 == 0:
            handle.cancel()
        if i % 7 == 0:
            shared.append(handle.get_context())
    loop.call_later(3600, print)  # dropped by close
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.close()
    gc.collect()
    assert seen == ["scheduled"] * (2000 - len(range(0, 2000, 3)))
    assert all(context[var] == "scheduled" for context in shared)
    del shared
    gc.collect()


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, mioloop.new_event_loop], ids=["asyncio", "mioloop"])
def test_the_current_context_is_looked_at_without_a_copy(new_loop):
    """mioloop finds, when it is imported, where the thread state keeps the current context, so
    that call_soon can tell an empty context without copying it: found on every Python it
    supports. Whatever the context is made of (never entered, entered and empty, holding a
    variable, emptied again by a reset), the callback sees what a copy made at the call would,
    as on asyncio."""
    assert mioloop.mioloop._finds_current_context
    var = contextvars.ContextVar("var", default="unset")
    loop = new_loop()
    seen = []

    def schedule(name):
        loop.call_soon(lambda: seen.append((name, var.get())))

    def holding_then_reset():
        token = var.set("set, then reset")
        schedule("holding")
        var.reset(token)
        schedule("reset")

    sender = threading.Thread(target=schedule, args=("never entered",))
    sender.start()
    sender.join()
    contextvars.Context().run(schedule, "entered, empty")
    contextvars.Context().run(holding_then_reset)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [("never entered", "unset"), ("entered, empty", "unset"), ("holding", "set, then reset"), ("reset", "unset")]


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, mioloop.new_event_loop], ids=["asyncio", "mioloop"])
def test_callbacks_sent_from_an_empty_context_each_run_in_their_own(new_loop):
    """A handle sent from a thread that never set a variable keeps no context: it is lent an empty
    one when it runs, which goes back to be lent again only if it is still empty and nothing else
    holds it (get_context() gives it for good, and a contextvars.Token keeps the context it was
    made in). Whatever a callback does to its context, no other callback sees it, and what
    get_context() gives out, before or during the run, is the context the callback ran in, as
    asyncio's copy per handle behaves (the same test runs on asyncio)."""
    var = contextvars.ContextVar("var", default="unset")
    loop = new_loop()
    seen, given = [], {}

    def context_of(handle):
        # asyncio's Handle has get_context() from 3.12; before, the attribute behind it.
        return handle.get_context() if hasattr(handle, "get_context") else handle._context

    def look(name, value=None):
        seen.append((name, var.get()))
        if value is not None:
            var.set(value)

    def look_and_ask(name):
        look(name, "set while running")
        given[name] = context_of(handles[name])

    def ask_only(name):
        look(name)
        given[name] = context_of(handles[name])  # left empty, but given out

    def set_in_what_was_given(name):
        try:
            given["asks only"].run(var.set, "set in a context given out")
            seen.append((name, "set it"))
        except RuntimeError:  # "already entered": this callback was lent the very same context
            seen.append((name, "was running in it"))

    def keep_a_token(name):
        first = var.set("set")
        tokens.append(var.set("set again"))  # a Token keeps its context: not to be lent again
        var.reset(first)
        seen.append((name, var.get()))

    def use_the_token(name):
        try:
            var.reset(tokens[0])
            seen.append((name, "reset a token of another callback's context"))
        except ValueError:
            seen.append((name, "refused a token of another callback's context"))

    def set_and_reset(name):
        token = var.set("set, then reset")
        seen.append((name, var.get()))
        var.reset(token)

    def send():
        try:
            schedule()
        finally:
            loop.call_soon_threadsafe(loop.stop)

    def schedule():
        handles["set"] = loop.call_soon_threadsafe(look, "set", "set by a callback")
        handles["after set"] = loop.call_soon_threadsafe(look, "after set")
        handles["reset"] = loop.call_soon_threadsafe(set_and_reset, "reset")
        handles["after reset"] = loop.call_soon_threadsafe(look, "after reset")
        handles["given before"] = loop.call_soon_threadsafe(look, "given before")
        given["given before"] = context_of(handles["given before"])
        given["given before"].run(var.set, "set in the given context")
        handles["asks"] = loop.call_soon_threadsafe(look_and_ask, "asks")
        handles["asks only"] = loop.call_soon_threadsafe(ask_only, "asks only")
        handles["sets it"] = loop.call_soon_threadsafe(set_in_what_was_given, "sets it")
        handles["after asking"] = loop.call_soon_threadsafe(look, "after asking")
        handles["token"] = loop.call_soon_threadsafe(keep_a_token, "token")
        handles["uses token"] = loop.call_soon_threadsafe(use_the_token, "uses token")
        handles["last"] = loop.call_soon_threadsafe(look, "last")

    handles, tokens = {}, []
    sender = threading.Thread(target=send)
    sender.start()
    sender.join()
    loop.run_forever()
    given["set"] = context_of(handles["set"])
    given["after set"] = context_of(handles["after set"])
    loop.close()
    assert seen == [
        ("set", "unset"),
        ("after set", "unset"),
        ("reset", "set, then reset"),
        ("after reset", "unset"),
        ("given before", "set in the given context"),
        ("asks", "unset"),
        ("asks only", "unset"),
        ("sets it", "set it"),
        ("after asking", "unset"),
        ("token", "unset"),
        ("uses token", "refused a token of another callback's context"),
        ("last", "unset"),
    ]
    assert given["set"][var] == "set by a callback"
    assert given["asks"][var] == "set while running"
    assert given["asks only"][var] == "set in a context given out"
    assert var not in given["after set"]
    assert len({id(context) for context in given.values()}) == len(given)


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, mioloop.new_event_loop], ids=["asyncio", "mioloop"])
def test_a_reader_keeps_one_context_across_its_runs(new_loop):
    """A reader's handle runs in the same context each time, as asyncio's does: a variable its
    callback sets (from an empty context) is there on the next run."""
    var = contextvars.ContextVar("var", default="unset")
    loop = new_loop()
    reader, writer = socket.socketpair()
    seen = []

    def readable():
        reader.recv(1)
        seen.append(var.get())
        var.set(f"set by run {len(seen)}")
        if len(seen) == 3:
            loop.stop()
        else:
            writer.send(b"x")

    def start():
        loop.add_reader(reader, readable)
        writer.send(b"x")

    # Added from a thread with an empty context, as a library's own thread would.
    starter = threading.Thread(target=lambda: loop.call_soon_threadsafe(start))
    starter.start()
    starter.join()
    try:
        loop.run_forever()
    finally:
        loop.remove_reader(reader)
        loop.close()
        reader.close()
        writer.close()
    assert seen == ["unset", "set by run 1", "set by run 2"]


def test_a_call_later_from_another_thread_does_not_wait_for_the_sleeping_loop(loop):
    """Not thread-safe (as in asyncio), but it must not block the caller until the loop's next event."""
    finished = threading.Event()

    def misuse():
        loop.call_later(0, loop.stop)  # should have been call_soon_threadsafe
        finished.set()

    threading.Timer(0.05, misuse).start()
    loop.call_later(60, print)  # the loop would otherwise sleep for a minute
    started = time.monotonic()
    loop.run_forever()
    assert finished.wait(5)
    assert time.monotonic() - started < 5


def test_callbacks_scheduled_in_the_turn_that_stops_wait_for_the_next_run():
    """asyncio's rule: run_forever returns after the turn in which stop() was called."""
    logs = {}
    for factory in (asyncio.new_event_loop, mioloop.new_event_loop):
        loop = factory()
        log = []

        def first():
            log.append("a")
            loop.call_soon(log.append, "b")
            loop.stop()

        loop.call_soon(first)
        loop.run_forever()
        log.append("stopped")
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.close()
        logs[factory.__module__] = log
    assert logs["mioloop"] == logs["asyncio.events"] == ["a", "stopped", "b"]


def test_debug_mode_reports_a_slow_callback_as_asyncio_does(caplog):
    def hog():
        time.sleep(0.06)

    for factory in (asyncio.new_event_loop, mioloop.new_event_loop):
        caplog.clear()
        loop = factory()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
        loop.call_soon(hog)
        loop.call_soon(loop.stop)
        with caplog.at_level("WARNING", logger="asyncio"):
            loop.run_forever()
        loop.close()
        slow = [record.getMessage() for record in caplog.records if "took" in record.getMessage()]
        assert len(slow) == 1 and slow[0].startswith("Executing <Handle") and "hog()" in slow[0], (factory, slow)
