//! A bounded pool of worker threads for CPU work, whose jobs are Rust futures.
//!
//! Taught in the chapters *The offload pool* and *Cancellation, panics, shutdown and backpressure*
//! (`book/src/gil-free-offload/`). The crate knows nothing of Python: `mioloop.offload` (in the
//! `mioloop-pymodule` crate) turns its jobs into asyncio awaitables through the bridge of Part IV.
//!
//! # Design principles
//!
//! 1. **A fixed number of workers, one per core by default.** CPU work gains nothing from more
//!    threads than cores; it only makes the threads, and the event loop's thread, wait for a core.
//! 2. **A bounded queue, and waiting for room is a future.** [`Pool::reserve`] resolves when the
//!    queue has room, first come, first served; a caller on an event loop awaits it instead of
//!    blocking the loop.
//!    [`Pool::try_submit`] never waits: it says [`SubmitError::Full`].
//! 3. **A job is a future.** [`Job`] resolves with the closure's value; the worker that finishes it
//!    calls the waker of whoever polled it, once, and does nothing else on its behalf.
//! 4. **Cancellation is dropping.** Dropping a [`Job`] (or calling [`Job::cancel`]) removes a queued
//!    job from the queue; a running job sees its [`Cancel`] flag and may stop between chunks.
//! 5. **A panic is a result.** A panicking job resolves to [`JobError::Panicked`] with the message;
//!    the worker survives and takes the next job.
//! 6. **Shutdown loses nothing.** [`Pool::shutdown`] refuses new jobs and lets every queued job run;
//!    [`Pool::cancel_queued`] is the explicit way to give up queued jobs, and they resolve to
//!    [`JobError::Cancelled`]. Dropping the last handle shuts the pool down without waiting: the
//!    workers finish the queue and exit on their own; [`Pool::join`] waits for them, and so does a
//!    [`Watch`], which outlives the handles. A job's inputs are dropped with no lock held.
//! 7. **Workers may yield to the loop.** [`Config::nice`] lowers the workers' scheduling priority
//!    (Linux), so that the thread that waits on I/O gets a core as soon as it wakes.

pub mod kernels;

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A job's panic is caught before it can poison anything; recover anyway rather than cascade.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The message a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str)).unwrap_or("<non-string payload>")
}

// ---- Configuration --------------------------------------------------------------------------------

/// Called on each worker thread as it starts; what it returns is dropped as the worker exits.
pub type ThreadHook = Arc<dyn Fn() -> Box<dyn Any> + Send + Sync>;

/// How to build a [`Pool`].
#[derive(Clone)]
pub struct Config {
    /// Worker threads. Default: the number of cores this process may use.
    pub workers: usize,
    /// Jobs that may wait in the queue (not counting the running ones). Default: 4 per worker.
    pub capacity: usize,
    /// How many steps below the creating thread's priority the workers run, on Linux (nice values
    /// add up, and stop at 19, the lowest). Default 0; elsewhere ignored.
    pub nice: i32,
    /// Worker threads are named `{name}-{index}` (seen in `top -H`, `/proc/self/task/*/comm`).
    pub name: String,
    /// Per-thread set-up and tear-down, e.g. an embedding's thread state (see [`ThreadHook`]).
    pub on_thread: Option<ThreadHook>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config").field("workers", &self.workers).field("capacity", &self.capacity).field("nice", &self.nice).field("name", &self.name).field("on_thread", &self.on_thread.is_some()).finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        let workers = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Config { workers, capacity: 4 * workers, nice: 0, name: "offload".into(), on_thread: None }
    }
}

// ---- Errors ---------------------------------------------------------------------------------------

/// Why a job did not produce its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobError {
    /// Cancelled while queued, or stopped early by the job itself after seeing its [`Cancel`] flag.
    Cancelled,
    /// The job panicked; the panic's message.
    Panicked(String),
    /// The pool was shut down before the job could be queued.
    ShutDown,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Cancelled => f.write_str("the job was cancelled"),
            JobError::Panicked(message) => write!(f, "the job panicked: {message}"),
            JobError::ShutDown => f.write_str("the pool is shut down"),
        }
    }
}

impl std::error::Error for JobError {}

/// Why [`Pool::try_submit`] refused a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue holds `capacity` jobs already: await [`Pool::reserve`], or try later.
    Full,
    /// The pool no longer takes jobs.
    ShutDown,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::Full => "the pool's queue is full",
            SubmitError::ShutDown => "the pool is shut down",
        })
    }
}

impl std::error::Error for SubmitError {}

/// What a job returns when it stops early because it was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl From<Cancelled> for JobError {
    fn from(_: Cancelled) -> Self {
        JobError::Cancelled
    }
}

// ---- Cancellation flag ------------------------------------------------------------------------------

/// A running job's view of its cancellation: cooperative, checked between chunks of work.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Whether whoever waits for the job has given up on it.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Cancelled)` once cancelled: `cancel.check()?` between chunks.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() { Err(Cancelled) } else { Ok(()) }
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---- Kernels ------------------------------------------------------------------------------------------

/// A unit of CPU work with its inputs: what a crate implements to offer work to the pool.
///
/// `run` borrows the kernel, so the inputs come back to the caller with the output (see
/// [`Pool::run_kernel`]): an input that must be released on a particular thread (a Python buffer
/// is released with the GIL) is released there, not on a worker.
///
/// ```
/// use offload::{Cancel, Cancelled, Kernel, Pool};
///
/// /// Sums a slice of numbers, checking for cancellation every 64 Ki numbers.
/// struct Sum(Vec<u64>);
///
/// impl Kernel for Sum {
///     type Output = u64;
///     fn run(&self, cancel: &Cancel) -> Result<u64, Cancelled> {
///         let mut total = 0;
///         for chunk in self.0.chunks(1 << 16) {
///             cancel.check()?;
///             total += chunk.iter().sum::<u64>();
///         }
///         Ok(total)
///     }
/// }
///
/// let pool = Pool::new(Default::default()).unwrap();
/// let (kernel, total) = offload::block_on(pool.run_kernel(Sum((1..=1000).collect()))).unwrap();
/// assert_eq!(total, 500_500);
/// assert_eq!(kernel.0.len(), 1000); // the inputs come back
/// ```
pub trait Kernel: Send + 'static {
    /// The value the work produces.
    type Output: Send + 'static;

    /// Does the work on a worker thread. Long work checks `cancel` between chunks and returns
    /// `Err(Cancelled)` when it is set.
    fn run(&self, cancel: &Cancel) -> Result<Self::Output, Cancelled>;
}

// ---- The shared state -----------------------------------------------------------------------------

/// A queued job, its type erased: run it (which stores the result and returns the waker to call
/// once the pool's counters are up to date), or tell its [`Job`] it was cancelled.
struct Entry {
    id: u64,
    run: Box<dyn FnOnce() -> Option<Waker> + Send>,
    cancelled: Box<dyn FnOnce() + Send>,
}

struct State {
    queue: VecDeque<Entry>,
    /// Room promised to a [`Slot`] that has not submitted yet: counts against the capacity.
    reserved: usize,
    /// [`Reserve`] futures waiting for room, oldest first: `(id, waker)`.
    waiting: VecDeque<(u64, Waker)>,
    /// [`Reserve`] futures taken off `waiting` and woken, not yet polled: each holds a claim on
    /// one room, which newcomers must leave alone (first come, first served).
    notified: usize,
    /// Worker threads that have not exited yet.
    alive: usize,
    open: bool,
    running: usize,
    completed: u64,
    next_id: u64,
}

impl State {
    /// Room nobody has a claim on.
    fn free(&self, capacity: usize) -> usize {
        capacity.saturating_sub(self.queue.len() + self.reserved + self.notified)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

struct Shared {
    state: Mutex<State>,
    /// Workers sleep here while the queue is empty.
    work: Condvar,
    /// Signalled as each worker exits.
    exited: Condvar,
    /// The workers' thread ids, set once they are all started.
    ids: std::sync::OnceLock<Vec<ThreadId>>,
    capacity: usize,
}

impl Shared {
    /// Room appeared: the oldest waiting [`Reserve`]s to wake, at most `count`, once the lock is
    /// released (a waker may do anything, even poll at once). A woken `Reserve` that gives up passes
    /// the wake-up on.
    fn take_waiting(&self, state: &mut State, count: usize) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for _ in 0..count.min(state.free(self.capacity)) {
            match state.waiting.pop_front() {
                Some((_, waker)) => {
                    state.notified += 1;
                    wakers.push(waker);
                }
                None => break,
            }
        }
        wakers
    }

    /// Called by a worker thread as the very last thing it does (after its [`ThreadHook`]'s guard
    /// is gone): from then on the thread touches nothing.
    fn exit(&self) {
        lock(&self.state).alive -= 1;
        self.exited.notify_all();
    }

    /// Refuses new jobs, then waits until every worker has run the queue and exited. From one of
    /// the pool's own workers it does not wait (a thread cannot wait for itself).
    fn join(&self) {
        self.shutdown();
        if self.ids.get().is_some_and(|ids| ids.contains(&thread::current().id())) {
            return;
        }
        let mut state = lock(&self.state);
        while state.alive > 0 {
            state = self.exited.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Refuses new jobs from now on; callers waiting for room are woken to hear it.
    fn shutdown(&self) {
        let waiting = {
            let mut state = lock(&self.state);
            state.open = false;
            state.notified += state.waiting.len();
            std::mem::take(&mut state.waiting)
        };
        self.work.notify_all();
        for (_, waker) in waiting {
            waker.wake(); // each sees the pool closed
        }
    }

    fn enqueue(&self, mut state: MutexGuard<'_, State>, entry: Entry) {
        state.queue.push_back(entry);
        drop(state);
        self.work.notify_one();
    }

    /// Removes a queued job; true if it was still queued (then it will never run).
    fn unqueue(&self, id: u64) -> bool {
        let mut state = lock(&self.state);
        let Some(at) = state.queue.iter().position(|entry| entry.id == id) else { return false };
        let entry = state.queue.remove(at).expect("found above");
        let wakers = self.take_waiting(&mut state, 1);
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        (entry.cancelled)();
        true
    }

    fn worker(&self) {
        let mut state = lock(&self.state);
        loop {
            let Some(entry) = state.queue.pop_front() else {
                // A reserved room is a job on its way: wait for it, even after shutdown.
                if !state.open && state.reserved == 0 {
                    return;
                }
                state = self.work.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            };
            state.running += 1;
            let wakers = self.take_waiting(&mut state, 1);
            drop(state);
            wakers.into_iter().for_each(Waker::wake);
            // Everything the job owns is dropped before the lock is taken again: a job's inputs
            // may need other locks to be released (a Python buffer needs the GIL).
            let Entry { run, cancelled, .. } = entry;
            drop(cancelled);
            let waker = run(); // catches the job's panic itself
            state = lock(&self.state);
            state.running -= 1;
            state.completed += 1;
            if let Some(waker) = waker {
                // Whoever awaits the job sees counters that include it.
                drop(state);
                waker.wake();
                state = lock(&self.state);
            }
        }
    }
}

// ---- Jobs ---------------------------------------------------------------------------------------------

/// Where a worker leaves a job's result, and the waker of whoever awaits it.
struct Outcome<T> {
    result: Option<Result<T, JobError>>,
    waker: Option<Waker>,
}

struct JobShared<T> {
    outcome: Mutex<Outcome<T>>,
    cancel: Cancel,
}

impl<T> JobShared<T> {
    /// Stores the result; returns the waker of whoever awaits it, to be called.
    fn store(&self, result: Result<T, JobError>) -> Option<Waker> {
        let mut outcome = lock(&self.outcome);
        outcome.result = Some(result);
        outcome.waker.take()
    }

    fn finish(&self, result: Result<T, JobError>) {
        if let Some(waker) = self.store(result) {
            waker.wake();
        }
    }
}

/// A submitted job: a future of its value. Dropping it before it resolves cancels the job.
#[must_use = "dropping a Job cancels it"]
pub struct Job<T> {
    id: u64,
    shared: Arc<JobShared<T>>,
    pool: Arc<Shared>,
    done: bool,
}

impl<T> Job<T> {
    /// Cancels the job: a queued job is removed and resolves to [`JobError::Cancelled`]; a running
    /// job has its [`Cancel`] flag set and resolves to whatever it returns.
    pub fn cancel(&self) {
        self.shared.cancel.set();
        self.pool.unqueue(self.id);
    }
}

impl<T> Job<T> {
    /// Lets the job run with nobody awaiting it (dropping a `Job` would cancel it): for jobs that
    /// deliver their result themselves.
    pub fn detach(mut self) {
        self.done = true;
    }
}

impl<T> Future for Job<T> {
    type Output = Result<T, JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut outcome = lock(&self.shared.outcome);
        match outcome.result.take() {
            Some(result) => {
                drop(outcome);
                self.done = true;
                Poll::Ready(result)
            }
            None => {
                if !outcome.waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                    outcome.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Job<T> {
    fn drop(&mut self) {
        if !self.done {
            self.cancel();
        }
    }
}

// ---- Waiting for room -----------------------------------------------------------------------------

/// Room for one job in the queue, promised by [`Pool::reserve`]; [`Slot::submit`] uses it.
/// Dropping it unused gives the room back.
#[must_use = "dropping a Slot gives its room back"]
pub struct Slot {
    pool: Arc<Shared>,
    used: bool,
}

impl Slot {
    /// Queues `job` in the reserved room; it runs on a worker with the job's [`Cancel`] flag.
    pub fn submit<T, F>(mut self, job: F) -> Job<T>
    where
        F: FnOnce(&Cancel) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.used = true;
        let mut state = lock(&self.pool.state);
        state.reserved -= 1;
        let id = state.id();
        let shared = Arc::new(JobShared { outcome: Mutex::new(Outcome { result: None, waker: None }), cancel: Cancel::default() });
        let (runs, told) = (shared.clone(), shared.clone());
        let entry = Entry {
            id,
            run: Box::new(move || {
                let cancel = &runs.cancel;
                let result = if cancel.is_cancelled() {
                    Err(JobError::Cancelled)
                } else {
                    catch_unwind(AssertUnwindSafe(|| job(cancel))).map_err(|payload| JobError::Panicked(panic_message(payload.as_ref()).to_owned()))
                };
                runs.store(result)
            }),
            cancelled: Box::new(move || told.finish(Err(JobError::Cancelled))),
        };
        self.pool.enqueue(state, entry);
        Job { id, shared, pool: self.pool.clone(), done: false }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.used {
            let mut state = lock(&self.pool.state);
            state.reserved -= 1;
            let wakers = self.pool.take_waiting(&mut state, 1);
            let closed = !state.open;
            drop(state);
            wakers.into_iter().for_each(Waker::wake);
            if closed {
                self.pool.work.notify_all(); // workers may have waited for this room to be used
            }
        }
    }
}

/// The future returned by [`Pool::reserve`].
pub struct Reserve {
    pool: Arc<Shared>,
    /// Our place among the waiting, once we had to wait.
    waiting: Option<u64>,
}

impl Future for Reserve {
    type Output = Result<Slot, JobError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pool = self.pool.clone();
        let mut state = lock(&pool.state);
        let place = self.waiting.and_then(|id| state.waiting.iter().position(|(waiting, _)| *waiting == id));
        // Off the list but registered: we were woken, and hold a claim on one room.
        let claimed = self.waiting.is_some() && place.is_none();
        if claimed {
            state.notified -= 1;
            self.waiting = None;
        }
        if !state.open {
            if let Some(at) = place {
                state.waiting.remove(at);
                self.waiting = None;
            }
            return Poll::Ready(Err(JobError::ShutDown));
        }
        // First come, first served: the woken, then the oldest waiting, then newcomers.
        let our_turn = claimed || place == Some(0) || (place.is_none() && state.waiting.is_empty());
        if our_turn && state.free(pool.capacity) > 0 {
            if let Some(at) = place {
                state.waiting.remove(at);
            }
            self.waiting = None;
            state.reserved += 1;
            return Poll::Ready(Ok(Slot { pool: pool.clone(), used: false }));
        }
        match place {
            Some(at) => state.waiting[at].1 = cx.waker().clone(),
            None => {
                let id = state.id();
                // A woken caller that found no room keeps its turn at the front.
                if claimed {
                    state.waiting.push_front((id, cx.waker().clone()));
                } else {
                    state.waiting.push_back((id, cx.waker().clone()));
                }
                self.waiting = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        let Some(id) = self.waiting else { return };
        let mut state = lock(&self.pool.state);
        let wakers = match state.waiting.iter().position(|(waiting, _)| *waiting == id) {
            Some(at) => {
                state.waiting.remove(at);
                Vec::new()
            }
            // We were woken for room we will not take: give up the claim, pass the wake-up on.
            None => {
                state.notified -= 1;
                self.pool.take_waiting(&mut state, 1)
            }
        };
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
    }
}

// ---- The pool -----------------------------------------------------------------------------------------

/// A snapshot of a pool's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub workers: usize,
    pub capacity: usize,
    /// Jobs waiting for a worker.
    pub queued: usize,
    /// Jobs on a worker now.
    pub running: usize,
    /// Jobs finished since the pool started (run to the end, panicked, or stopped early).
    pub completed: u64,
    /// Callers waiting in [`Pool::reserve`] for room.
    pub waiting: usize,
    /// Whether the pool still takes jobs.
    pub open: bool,
}

/// The handles' shared part: when the last [`Pool`] handle goes, the pool shuts down.
struct Workers {
    shared: Arc<Shared>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        // No join: the last handle may go on a thread the workers are waiting for (an event loop
        // holding a lock they need, or a worker itself). The queue still runs to the end.
        self.shared.shutdown();
    }
}

/// A pool of worker threads. Cloning gives another handle to the same pool; when the last handle
/// goes, the pool shuts down, and its workers finish the queue and exit.
#[derive(Clone)]
pub struct Pool {
    workers: Arc<Workers>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pool").field(&self.stats()).finish()
    }
}

impl Pool {
    /// Starts `config.workers` threads. Zero workers or zero capacity is `InvalidInput`.
    pub fn new(config: Config) -> io::Result<Pool> {
        if config.workers == 0 || config.capacity == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a pool needs at least one worker and room for one job"));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State { queue: VecDeque::new(), reserved: 0, waiting: VecDeque::new(), notified: 0, alive: config.workers, open: true, running: 0, completed: 0, next_id: 0 }),
            work: Condvar::new(),
            exited: Condvar::new(),
            ids: std::sync::OnceLock::new(),
            capacity: config.capacity,
        });
        let mut threads = Vec::with_capacity(config.workers);
        for index in 0..config.workers {
            let (worker, nice, hook) = (shared.clone(), config.nice, config.on_thread.clone());
            let spawned = thread::Builder::new().name(format!("{}-{index}", config.name)).spawn(move || {
                lower_priority(nice);
                {
                    let _guard = hook.map(|hook| hook());
                    worker.worker();
                }
                worker.exit();
            });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    lock(&shared.state).open = false;
                    shared.work.notify_all();
                    threads.into_iter().for_each(|thread| drop(thread.join()));
                    return Err(error);
                }
            }
        }
        // The threads are detached: `join` waits for them through the `alive` count, which also
        // works for a pool whose handles are gone (see [`Watch`]).
        let _ = shared.ids.set(threads.iter().map(|thread| thread.thread().id()).collect());
        Ok(Pool { workers: Arc::new(Workers { shared }) })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.workers.shared
    }

    /// Room for one job, when the queue has some: the way to submit without blocking the caller.
    /// Resolves to [`JobError::ShutDown`] once the pool is shut down.
    pub fn reserve(&self) -> Reserve {
        Reserve { pool: self.shared().clone(), waiting: None }
    }

    /// Queues `job` if there is room now.
    pub fn try_submit<T, F>(&self, job: F) -> Result<Job<T>, SubmitError>
    where
        F: FnOnce(&Cancel) -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = self.shared();
        let mut state = lock(&shared.state);
        if !state.open {
            return Err(SubmitError::ShutDown);
        }
        if !state.waiting.is_empty() || state.free(shared.capacity) == 0 {
            return Err(SubmitError::Full);
        }
        state.reserved += 1;
        drop(state);
        Ok(Slot { pool: shared.clone(), used: false }.submit(job))
    }

    /// Waits for room, queues `job`, and resolves with its value.
    pub async fn run<T, F>(&self, job: F) -> Result<T, JobError>
    where
        F: FnOnce(&Cancel) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.reserve().await?.submit(job).await
    }

    /// Runs a [`Kernel`] and gives it back with its output. If the job is cancelled or panics,
    /// the kernel is dropped on the worker.
    pub async fn run_kernel<K: Kernel>(&self, kernel: K) -> Result<(K, K::Output), JobError> {
        let (kernel, output) = self.run(move |cancel| {
            let output = kernel.run(cancel);
            (kernel, output)
        }).await?;
        Ok((kernel, output?))
    }

    /// Stops taking jobs. Queued and running jobs still finish and deliver their results;
    /// callers waiting in [`Pool::reserve`] get [`JobError::ShutDown`]. Does not wait.
    pub fn shutdown(&self) {
        self.shared().shutdown();
    }

    /// Removes every queued job; each resolves to [`JobError::Cancelled`]. Running jobs go on.
    /// Returns how many were removed.
    pub fn cancel_queued(&self) -> usize {
        let shared = self.shared();
        let (removed, wakers) = {
            let mut state = lock(&shared.state);
            let removed: Vec<Entry> = state.queue.drain(..).collect();
            let wakers = shared.take_waiting(&mut state, removed.len());
            (removed, wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
        let count = removed.len();
        for entry in removed {
            (entry.cancelled)();
        }
        count
    }

    /// Shuts the pool down and waits until every worker has finished the queue and exited.
    /// Called from one of the pool's own workers, it does not wait (a thread cannot join itself).
    pub fn join(&self) {
        self.shared().join();
    }

    /// A [`Watch`] on this pool, which does not keep it open.
    pub fn watch(&self) -> Watch {
        Watch(self.shared().clone())
    }

    /// The pool's counters, now.
    pub fn stats(&self) -> Stats {
        let shared = self.shared();
        let state = lock(&shared.state);
        Stats {
            workers: shared.ids.get().map_or(0, Vec::len),
            capacity: shared.capacity,
            queued: state.queue.len(),
            running: state.running,
            completed: state.completed,
            waiting: state.waiting.len(),
            open: state.open,
        }
    }
}

/// Watches a pool without keeping it open: when the last [`Pool`] handle goes the pool still
/// shuts down, and its workers finish the queue on their own; a `Watch` can wait for them. An
/// embedding uses it to make sure no worker is still running when the host shuts down (Python's
/// `atexit`, before the interpreter finalizes).
#[derive(Clone)]
pub struct Watch(Arc<Shared>);

impl Watch {
    /// Shuts the pool down (as [`Pool::shutdown`]) and waits until every worker has exited.
    pub fn join(&self) {
        self.0.join();
    }

    /// Whether the pool is shut down and every worker has exited.
    pub fn is_finished(&self) -> bool {
        let state = lock(&self.0.state);
        !state.open && state.alive == 0
    }
}

/// Lowers the calling thread's priority by `nice` steps (Linux schedules threads, so this is per
/// thread): a worker starts at its creator's nice value and ends at that plus `nice`, at most 19.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != 0 {
        // SAFETY: plain system calls on the calling thread; failure leaves the priority unchanged.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let inherited = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (inherited + nice).min(19));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

// ---- Blocking on a future (for tests, examples and synchronous callers) ------------------------------

/// Runs a future to completion on the calling thread, parking between polls.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests;
