//! The `mioloop` Python module, as an rlib.
//!
//! Two crates consume it: the `mioloop` cdylib wrapper (`crates/mioloop`), which maturin builds into the
//! package readers `pip install`, and the book's test package, which registers the module in an
//! embedded interpreter before it starts, so that the book's Python blocks can `import mioloop`.
//! Keeping the module here, not in the cdylib, is what lets both link it.
//!
//! The module is a thin skin: each submodule wraps a pure-Rust crate that knows nothing of Python.
//!
//! | Python | Rust | chapter |
//! |---|---|---|
//! | `mioloop.selectors` | [`selector`] over the `selectors` crate | *Selectors* |
//! | `mioloop.Future` | [`future`] | *mioloop.Future* |
//! | `mioloop.Task` | [`task`] | *mioloop.Future* |
//! | `mioloop.bridge` | [`bridge`]: Rust futures ↔ asyncio | *Rust futures meet asyncio* |
//! | `mioloop.offload` | [`offload`] over the `offload` crate: Rust kernels on worker threads | *The offload pool* |
//! | `mioloop.EventLoop` | [`event_loop`] over the `event-loop` crate, with asyncio's `BaseEventLoop` | *The same loop in Rust* |
//! | its socket transport | [`transport`]: asyncio's, with native reads and writes | *Transports and protocols* |
//! | its `sock_recv`, `sock_sendall` | [`sock`]: asyncio's checks, native attempts and retries | *Sockets on the loop* |

pub mod bridge;
pub(crate) mod cmethod;
pub(crate) mod contexts;
pub mod event_loop;
pub mod future;
pub(crate) mod gil;
pub(crate) mod handle_memory;
pub mod offload;
pub mod selector;
pub mod sock;
pub mod task;
pub mod transport;

/// `import mioloop`: the selector, the event loop, the Future and the offload pool of *Under the Await*.
#[pyo3::pymodule]
pub mod mioloop {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::event_loop::{EventLoopCore, Handle, TimerHandle};

    #[pymodule_export]
    use crate::future::Future;

    #[pymodule_export]
    use crate::task::Task;

    #[pymodule_init]
    fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = module.py();
        module.add("__version__", env!("CARGO_PKG_VERSION"))?;
        crate::future::install_slots::<crate::future::Future>(&py.get_type::<crate::future::Future>());
        crate::future::install_slots::<crate::task::Task>(&py.get_type::<crate::task::Task>());
        crate::handle_memory::install(&py.get_type::<crate::event_loop::Handle>())?;
        crate::contexts::install(py)?;
        module.add("_finds_current_context", crate::contexts::found())?;
        let core = py.get_type::<crate::event_loop::EventLoopCore>();
        crate::event_loop::install_call_soon(&core)?;
        crate::sock::install(&core)?;
        // The Python half of EventLoop: asyncio's BaseEventLoop on top of the native core.
        let namespace = pyo3::types::PyDict::new(py);
        namespace.set_item("_EventLoopCore", &core)?;
        namespace.set_item("__name__", "mioloop")?;
        let source = std::ffi::CString::new(include_str!("event_loop.py")).expect("no NUL in event_loop.py");
        py.run(&source, Some(&namespace), None)?;
        // The socket transport's two per-message paths (`transport`), as methods of its class.
        crate::transport::install(namespace.get_item("_SocketTransport")?.expect("defined by event_loop.py").cast()?)?;
        for name in ["EventLoop", "new_event_loop", "EventLoopPolicy"] {
            module.add(name, namespace.get_item(name)?.expect("defined by event_loop.py"))?;
        }
        Ok(())
    }

    /// `mioloop.bridge`: Rust futures awaited from Python, and Python awaitables from Rust.
    #[pymodule]
    pub mod bridge {
        use pyo3::prelude::*;

        #[pymodule_export]
        use crate::bridge::{after, after_many, forever, panics, ready, ready_pyo3, relay};

        #[pymodule_init]
        fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
            module.py().import("sys")?.getattr("modules")?.set_item("mioloop.bridge", module)
        }
    }

    /// `mioloop.offload`: CPU work on Rust worker threads, outside the interpreter, awaited from asyncio.
    #[pymodule]
    pub mod offload {
        use pyo3::prelude::*;

        #[pymodule_export]
        use crate::offload::{Pool, compress, count_primes, crc32, default_pool, empty, panics, sha256};

        #[pymodule_export]
        use crate::offload::_shutdown_all;

        #[pymodule_init]
        fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = module.py();
            // The Python half: Executor, a concurrent.futures.Executor on a Pool's threads.
            let namespace = pyo3::types::PyDict::new(py);
            namespace.set_item("Pool", py.get_type::<crate::offload::Pool>())?;
            namespace.set_item("__name__", "mioloop.offload")?;
            let source = std::ffi::CString::new(include_str!("offload.py")).expect("no NUL in offload.py");
            py.run(&source, Some(&namespace), None)?;
            module.add("Executor", namespace.get_item("Executor")?.expect("defined by offload.py"))?;
            py.import("atexit")?.call_method1("register", (module.getattr("_shutdown_all")?,))?;
            py.import("sys")?.getattr("modules")?.set_item("mioloop.offload", module)
        }
    }

    /// `mioloop.selectors`: a level-triggered selector over mio, interchangeable with the standard
    /// library's `selectors.DefaultSelector`.
    #[pymodule]
    pub mod selectors {
        use pyo3::prelude::*;

        #[pymodule_export]
        use crate::selector::{MioSelector, SelectorMapping};

        #[pymodule_export]
        const EVENT_READ: u8 = 1;

        #[pymodule_export]
        const EVENT_WRITE: u8 = 2;

        #[pymodule_init]
        fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = module.py();
            let stdlib = py.import("selectors")?;
            let selector = py.get_type::<crate::selector::MioSelector>();
            module.add("SelectorKey", stdlib.getattr("SelectorKey")?)?;
            module.add("DefaultSelector", &selector)?;
            // isinstance(MioSelector(), selectors.BaseSelector) and isinstance(get_map(), Mapping)
            // (BaseSelector.register is the selector method, so ABCMeta's is called explicitly)
            let abc_register = py.import("abc")?.getattr("ABCMeta")?.getattr("register")?;
            abc_register.call1((stdlib.getattr("BaseSelector")?, &selector))?;
            let mapping = py.get_type::<crate::selector::SelectorMapping>();
            abc_register.call1((py.import("collections.abc")?.getattr("Mapping")?, mapping))?;
            // so that `import mioloop.selectors` finds the submodule
            py.import("sys")?.getattr("modules")?.set_item("mioloop.selectors", module)
        }
    }
}
