//! The example kernel, imported and awaited by real asyncio code in an embedded CPython, on
//! asyncio's loop and on mioloop's.

use mioloop_pymodule::mioloop;
use histogram_kernel::histogram;
use pyo3::prelude::*;

const PROGRAM: &str = r#"
import asyncio, collections, mioloop, mioloop.offload
from histogram import histogram

async def main():
    data = bytes(range(256)) * 1000 + b"under the await" * 3
    counts = await histogram(data)
    expected = collections.Counter(data)
    assert counts == [expected[value] for value in range(256)], counts[:8]
    assert sum(await histogram(bytearray(b"abc"))) == 3
    assert await histogram(memoryview(b"")) == [0] * 256
    with mioloop.offload.Pool(1) as pool:
        assert (await histogram(b"zz", pool=pool))[ord("z")] == 2
    try:
        histogram("text")
    except TypeError as error:
        assert "bytes-like" in str(error)
    else:
        raise AssertionError("a str is not bytes")
    # Cancelling the awaiting task cancels the job; the loop goes on.
    big = bytes(64 << 20)
    task = asyncio.ensure_future(histogram(big))
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert (await histogram(b"\x00"))[0] == 1
    return "ok"

for factory in (asyncio.new_event_loop, mioloop.new_event_loop):
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main()) == "ok"
"#;

#[test]
fn the_example_kernel_runs_under_asyncio_and_mioloop() {
    pyo3::append_to_inittab!(mioloop);
    pyo3::append_to_inittab!(histogram);
    Python::initialize();
    Python::attach(|py| {
        let program = std::ffi::CString::new(PROGRAM).unwrap();
        if let Err(error) = py.run(&program, None, None) {
            error.display(py);
            panic!("the program failed: {error}");
        }
    });
}
