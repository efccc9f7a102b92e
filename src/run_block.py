"""Runs one Python block of a chapter; the Rust side (src/python.rs) decides what counts as a failure."""

import builtins
import io
import linecache
import sys
import traceback


def new_namespace():
    """A fresh namespace for a chapter; chapters never see each other's names or event loop policy."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        asyncio.set_event_loop_policy(None)
    return {"__name__": "__main__", "__builtins__": builtins}


def register_source(filename, text):
    """Lets tracebacks quote the chapter's own lines."""
    lines = text.splitlines(keepends=True)
    linecache.cache[filename] = (len(text), None, lines, filename)


def run(source, filename, namespace, raises):
    """Executes `source` in `namespace` with stdout and stderr captured.

    Returns (stdout, stderr, traceback or None, whether the exception was exactly `raises`).
    """
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    raised = None
    try:
        exec(compile(source, filename, "exec"), namespace)
    except BaseException as exc:  # a block may raise anything, SystemExit included
        raised = exc
    finally:
        sys.stdout, sys.stderr = saved
    if raised is None:
        return out.getvalue(), err.getvalue(), None, False
    tb = raised.__traceback__.tb_next  # skip this function's own frame
    text = "".join(traceback.format_exception(type(raised), raised, tb))
    return out.getvalue(), err.getvalue(), text, raises is not None and is_exactly(raised, raises, namespace)


def is_exactly(exc, name, namespace):
    """True when `exc` is an instance of exactly the class `name` (resolved in the chapter's namespace)."""
    try:
        cls = eval(name, dict(namespace))
    except Exception:
        cls = None
    if isinstance(cls, type):
        return type(exc) is cls
    return type(exc).__name__ == name.rsplit(".", 1)[-1]
