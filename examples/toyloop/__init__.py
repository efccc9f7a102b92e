"""A toy event loop, built one idea per module for Part II of the book, "Build an event loop, twice".

Each module adds one idea and is taught by one chapter; a later module imports or subclasses an
earlier one and never copies it:

    round_robin  run_task, run_tasks, Interrupt, busy_sleep                        "A round-robin loop"
    loop         Loop (ready queue, run, run_task, stop), get_running_loop         "A loop object"
    waiter       Waiter (done after n notifications), gather                       "Waiter and gather"
    aiosocket    WaitFor, SelectorLoop (gains a selector), AIOSocket, LogTimeouts  "Sockets"
    future       Future, FutureLoop (parks tasks on futures), Counted              "Futures"
    timers       TimerLoop (timer heap, call_at, call_later), sleep                "Time"
    aiter        sleep_until, Ticker, ticks, ReverseServer, connected              "Async iteration and context managers"

The loop classes form one line of inheritance, each overriding a hook or two:
Loop -> SelectorLoop -> FutureLoop -> TimerLoop.

Every module runs a short demo on its own: from `examples/`, `python -m toyloop.<module>`.
"""
