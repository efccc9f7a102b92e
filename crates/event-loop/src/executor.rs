//! A small executor for Rust futures on the loop core: [`block_on`], [`spawn`] with
//! [`JoinHandle`]s, and [`sleep`]; [`crate::net`] adds TCP.
//!
//! Taught in the chapter *The same loop in Rust*. Every task is a pinned, boxed future with a number;
//! the core's callbacks are [`Event`]s: "poll task n", or "wake this waker" (a timer or a descriptor
//! that a future is waiting for). A task's waker schedules it straight onto the ready queue when
//! called on the loop thread, and through the core's [`crate::Remote`] from any other thread.

use crate::{Core, Job, Remote, TimerId};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

/// What the executor asks the core to call.
pub enum Event {
    /// Poll this task.
    Poll(usize),
    /// Wake this waker: a timer fired, or a descriptor a future waits for is ready.
    Wake(Waker),
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The executor of the current thread, reachable from the futures it polls.
pub(crate) struct Runtime {
    pub(crate) core: RefCell<Core<Event>>,
    tasks: RefCell<HashMap<usize, Task>>,
    next_task: Cell<usize>,
    remote: Remote<Event>,
    thread: ThreadId,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

/// The runtime running on this thread. Panics outside [`block_on`], as using a loop that does not
/// run is a bug, not a condition to handle.
pub(crate) fn current() -> Rc<Runtime> {
    try_current().expect("no executor runs on this thread: call this inside block_on")
}

/// The runtime running on this thread, if any (for destructors, which may run after it is gone).
pub(crate) fn try_current() -> Option<Rc<Runtime>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The waker of one task: schedules a poll, at most once until the task is polled.
struct TaskWaker {
    id: usize,
    /// True from a wake until the poll it causes: many wakes, one poll.
    scheduled: AtomicBool,
    remote: Remote<Event>,
    thread: ThreadId,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let on_loop_thread = thread::current().id() == self.thread;
        match try_current().filter(|_| on_loop_thread) {
            // On the loop thread: straight onto the ready queue, no lock, no system call.
            Some(runtime) => runtime.core.borrow_mut().call_soon(Event::Poll(self.id)),
            // Elsewhere: through the remote queue, which wakes the loop if it sleeps.
            None => {
                let _loop_gone = self.remote.call_soon_threadsafe(Event::Poll(self.id));
            }
        }
    }
}

/// Why a task gave no result.
pub enum JoinError {
    /// The task panicked; the payload is the panic's.
    Panicked(Box<dyn Any + Send>),
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let JoinError::Panicked(payload) = self;
        write!(f, "JoinError::Panicked({:?})", panic_message(payload.as_ref()))
    }
}

/// The message a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("<non-string payload>")
}

/// The state a task shares with its [`JoinHandle`].
struct Joint<T> {
    result: Option<Result<T, JoinError>>,
    waiter: Option<Waker>,
}

/// Awaits a spawned task's result; a panic in the task comes back as `Err(JoinError::Panicked)`.
/// Dropping the handle does not cancel the task.
pub struct JoinHandle<T> {
    joint: Rc<RefCell<Joint<T>>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut joint = self.joint.borrow_mut();
        match joint.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                joint.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Runtime {
    fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        let joint = Rc::new(RefCell::new(Joint { result: None, waiter: None }));
        let task_joint = joint.clone();
        let id = self.next_task.get();
        self.next_task.set(id + 1);
        let mut future = Box::pin(future);
        let task = std::future::poll_fn(move |cx| {
            // A panic ends this task only: it becomes the task's result.
            let outcome = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(value)) => Ok(value),
                Err(payload) => Err(JoinError::Panicked(payload)),
            };
            let mut joint = task_joint.borrow_mut();
            joint.result = Some(outcome);
            if let Some(waiter) = joint.waiter.take() {
                waiter.wake();
            }
            Poll::Ready(())
        });
        self.tasks.borrow_mut().insert(id, Box::pin(task));
        self.core.borrow_mut().call_soon(Event::Poll(id));
        JoinHandle { joint }
    }

    fn poll_task(&self, id: usize) {
        // Taken out while it runs, so that it can spawn tasks (which borrows the map).
        let Some(mut task) = self.tasks.borrow_mut().remove(&id) else { return }; // finished already
        let waker = Waker::from(Arc::new(TaskWaker { id, scheduled: AtomicBool::new(false), remote: self.remote.clone(), thread: self.thread }));
        if task.as_mut().poll(&mut Context::from_waker(&waker)).is_pending() {
            self.tasks.borrow_mut().insert(id, task);
        }
    }

    fn run(&self, job: Job<Event>) -> io::Result<()> {
        let event = match job {
            Job::Call(event) => Some(event),
            // A future waiting for a descriptor is woken once; it registers again if it must wait again.
            Job::Readable(fd) => self.core.borrow_mut().remove_reader(fd)?,
            Job::Writable(fd) => self.core.borrow_mut().remove_writer(fd)?,
        };
        match event {
            Some(Event::Poll(id)) => self.poll_task(id),
            Some(Event::Wake(waker)) => waker.wake(),
            None => {}
        }
        Ok(())
    }
}

/// Runs `future` to completion on a new loop on this thread, with the tasks it spawns; returns
/// its output. Tasks still running when it completes are dropped. A panic in `future` is resumed
/// here; a panic in a spawned task goes to its [`JoinHandle`].
pub fn block_on<F: Future + 'static>(future: F) -> io::Result<F::Output> {
    if CURRENT.with(|c| c.borrow().is_some()) {
        return Err(io::Error::other("block_on inside block_on: this thread already runs a loop"));
    }
    let core = Core::new()?;
    let remote = core.remote();
    let runtime = Rc::new(Runtime {
        core: RefCell::new(core),
        tasks: RefCell::new(HashMap::new()),
        next_task: Cell::new(0),
        remote,
        thread: thread::current().id(),
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(runtime.clone()));
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            // Drop the tasks after leaving, so their destructors (cancelling timers...) find no loop.
            if let Some(runtime) = CURRENT.with(|c| c.borrow_mut().take()) {
                let tasks = std::mem::take(&mut *runtime.tasks.borrow_mut());
                drop(tasks);
            }
        }
    }
    let _leave = Leave;
    let main = runtime.spawn(future);
    loop {
        if let Some(result) = main.joint.borrow_mut().result.take() {
            return result.map_err(|JoinError::Panicked(payload)| resume_unwind(payload));
        }
        let turn = runtime.core.borrow_mut().turn()?;
        for job in turn {
            runtime.run(job)?;
        }
    }
}

/// Starts `future` as a task on the current loop. Panics outside [`block_on`].
pub fn spawn<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    current().spawn(future)
}

/// Completes once `duration` has passed (never earlier).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep { deadline: Instant::now() + duration, timer: None }
}

/// The future of [`sleep`]; dropping it early cancels its timer.
pub struct Sleep {
    deadline: Instant,
    timer: Option<TimerId>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.timer = None;
            return Poll::Ready(());
        }
        let runtime = current();
        let mut core = runtime.core.borrow_mut();
        if let Some(old) = self.timer.take() {
            core.cancel(old); // polled again early: re-arm with the current waker
        }
        self.timer = Some(core.call_at(self.deadline, Event::Wake(cx.waker().clone())));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            if let Some(runtime) = try_current() {
                runtime.core.borrow_mut().cancel(timer);
            }
        }
    }
}

/// Yields to the loop once: the task goes to the back of the ready queue (asyncio's `sleep(0)`).
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
