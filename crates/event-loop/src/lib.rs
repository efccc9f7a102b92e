//! The loop core: a ready queue, a timer heap, a selector wait and a cross-thread waker, with no
//! opinion about what a callback is.
//!
//! Taught in the chapter *The same loop in Rust* (`book/src/build-a-loop/rust-loop.md`); the
//! executor for Rust futures in [`executor`] runs on it, and later parts host asyncio on it.
//!
//! # Design principles
//!
//! 1. **The core never runs a callback.** [`Core::turn`] waits, then hands back the turn's work as a
//!    [`Turn`]; the host runs it with full access to the core. Callbacks can therefore schedule more
//!    work without fighting a borrow, and a host (a Rust executor, a Python loop) decides what a
//!    callback *is*: `C` is any type.
//! 2. **Snapshot the ready queue.** A turn takes exactly the callbacks that were ready when it began;
//!    what they schedule runs next turn. A callback that reschedules itself forever cannot starve I/O.
//! 3. **I/O is polled every turn, before timers run.** Even when callbacks or already-due timers are
//!    waiting, the turn asks the selector (without sleeping), so a loop full of due timers still
//!    hears its sockets.
//! 4. **Timers never fire early and keep their order.** A timer is due when its deadline has passed;
//!    equal deadlines fire in the order they were scheduled. The wait's timeout is the time to the
//!    next deadline, rounded up, never down.
//! 5. **Cancelling a timer is cheap.** Cancellation drops the callback at once and leaves a stale
//!    entry in the heap (lazy deletion); the heap is compacted when stale entries outnumber live ones.
//! 6. **Other threads wake the loop only when it sleeps.** [`Remote::call_soon_threadsafe`] queues
//!    under a lock and writes to the waker only if the loop is asleep or about to be, once per batch.
//! 7. **Level-triggered I/O, looked up late.** A readable descriptor puts [`Job::Readable`] in the
//!    turn, not a copy of its callback; the host looks the callback up when it runs the job, so a
//!    reader removed earlier in the same turn does not run.
//! 8. **Signals do not break the loop.** A wait interrupted by a signal ends the wait early; the turn
//!    goes on, and the host gets to run its signal handlers.
//! 9. **A busy loop does not unregister what it is about to register again.** A descriptor whose
//!    last watcher goes is *parked*: it stays in the kernel's set, unwatched, until the loop next
//!    sleeps or the kernel reports it, and is unregistered then. A watcher added meanwhile costs one
//!    `EPOLL_CTL_MOD` where removing and adding would cost a `DEL` and an `ADD` (a `sock_recv` that
//!    waits for every message, the next one asked for before the loop sleeps).

pub mod executor;
pub mod net;
mod timers;

use selectors::{Error as SelectorError, Events, Selector};
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use timers::TimerId;
use timers::Timers;

/// One piece of work handed to the host by [`Core::turn`].
#[derive(Debug, PartialEq, Eq)]
pub enum Job<C> {
    /// A callback: run it.
    Call(C),
    /// This descriptor is readable: run its reader, if it still has one ([`Core::reader`]).
    Readable(RawFd),
    /// This descriptor is writable: run its writer, if it still has one ([`Core::writer`]).
    Writable(RawFd),
}

/// The work of one turn, in asyncio's order: callbacks that were ready, then I/O, then due timers.
pub type Turn<C> = VecDeque<Job<C>>;

/// The callbacks watching one descriptor.
struct Watchers<C> {
    reader: Option<C>,
    writer: Option<C>,
}

impl<C> Watchers<C> {
    fn events(&self) -> Option<Events> {
        match (&self.reader, &self.writer) {
            (Some(_), Some(_)) => Some(Events::READ | Events::WRITE),
            (Some(_), None) => Some(Events::READ),
            (None, Some(_)) => Some(Events::WRITE),
            (None, None) => None,
        }
    }
}

/// The loop core. `C` is the host's callback type.
pub struct Core<C> {
    /// Callbacks that can run now, in order.
    ready: VecDeque<Job<C>>,
    /// Callbacks that will be ready at a deadline.
    timers: Timers<C>,
    /// Descriptors and their readers and writers; the selector's data.
    io: Selector<Watchers<C>>,
    /// Where other threads leave callbacks, and how they wake the wait.
    remote: Arc<Shared<C>>,
    /// Registered descriptors with no watcher left (principle 9).
    parked: BTreeSet<RawFd>,
    /// The last wait's ready descriptors: one buffer, kept from wait to wait.
    io_ready: Vec<(RawFd, Events)>,
}

/// The part of the core that other threads reach through a [`Remote`].
struct Shared<C> {
    /// Callbacks queued by other threads since the last turn; `None` once the core is dropped, so
    /// that a `Remote` outliving its loop neither keeps callbacks nor a descriptor alive.
    queue: Mutex<Option<Vec<C>>>,
    /// True while the loop is asleep in the selector, or about to be.
    sleeping: AtomicBool,
    /// True when `queue` may hold callbacks: lets a busy loop skip the lock on turns when no other
    /// thread called.
    pending: AtomicBool,
    /// Ends the wait early (mio's `Waker`, an eventfd on Linux: what asyncio does with a self-pipe); locked only
    /// to wake a sleeping loop, and emptied when the core is dropped.
    waker: Mutex<Option<mio::Waker>>,
    /// How many times the waker was written to: the cost principle 6 keeps low.
    wakeups: AtomicU64,
}

/// A handle that lets any thread schedule a callback on the loop and wake it.
pub struct Remote<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for Remote<C> {
    fn clone(&self) -> Self {
        Remote { shared: self.shared.clone() }
    }
}

impl<C> Remote<C> {
    /// Ends the loop's wait if it sleeps, without queueing anything (asyncio's `_write_to_self`).
    pub fn wake(&self) -> io::Result<()> {
        if self.shared.sleeping.swap(false, Ordering::SeqCst) {
            self.shared.wakeups.fetch_add(1, Ordering::Relaxed);
            if let Some(waker) = lock(&self.shared.waker).as_ref() {
                waker.wake()?;
            }
        }
        Ok(())
    }

    /// Tells the loop that work waits for it outside the core (a host's own queue): its next wait
    /// does not sleep, and a wait in progress ends. Cheap when the loop is busy: a flag.
    pub fn notify(&self) -> io::Result<()> {
        self.shared.pending.store(true, Ordering::SeqCst);
        self.wake()
    }

    /// How many times the waker was written to (see [`Core::wakeups`]).
    pub fn wakeups(&self) -> u64 {
        self.shared.wakeups.load(Ordering::Relaxed)
    }

    /// Queues `callback` to run on the loop thread, waking the loop only if it sleeps.
    ///
    /// Many calls during one sleep cost one wake-up: the first caller that finds the loop asleep
    /// clears the flag and writes to the waker; the others see it cleared.
    /// Fails with `ErrorKind::NotConnected` once the loop's core is gone (the callback is dropped).
    pub fn call_soon_threadsafe(&self, callback: C) -> io::Result<()> {
        match lock(&self.shared.queue).as_mut() {
            Some(queue) => queue.push(callback),
            None => return Err(io::Error::new(io::ErrorKind::NotConnected, "the event loop is closed")),
        }
        self.shared.pending.store(true, Ordering::SeqCst);
        self.wake()
    }
}

/// A mutex's content, even if a thread panicked while holding it (the data stays consistent: every
/// critical section here is a push, a take or a wake).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C> Drop for Core<C> {
    fn drop(&mut self) {
        // Callbacks queued from other threads are dropped with the core, and the waker is closed.
        drop(lock(&self.remote.queue).take());
        drop(lock(&self.remote.waker).take());
    }
}

fn selector_error(e: SelectorError) -> io::Error {
    match e {
        SelectorError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}

impl<C> Core<C> {
    pub fn new() -> io::Result<Self> {
        let io = Selector::new()?;
        let waker = io.waker().map_err(selector_error)?;
        let remote = Arc::new(Shared {
            queue: Mutex::new(Some(Vec::new())),
            sleeping: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            waker: Mutex::new(Some(waker)),
            wakeups: AtomicU64::new(0),
        });
        Ok(Core { ready: VecDeque::new(), timers: Timers::default(), io, remote, parked: BTreeSet::new(), io_ready: Vec::new() })
    }

    /// A handle for other threads.
    pub fn remote(&self) -> Remote<C> {
        Remote { shared: self.remote.clone() }
    }

    /// Runs `callback` on the next turn (after everything already queued).
    pub fn call_soon(&mut self, callback: C) {
        self.ready.push_back(Job::Call(callback));
    }

    /// Runs `callback` on the first turn after `deadline`.
    pub fn call_at(&mut self, deadline: Instant, callback: C) -> TimerId {
        self.timers.insert(deadline, callback)
    }

    /// Runs `callback` on the first turn after `delay` from now.
    pub fn call_later(&mut self, delay: Duration, callback: C) -> TimerId {
        self.call_at(Instant::now() + delay, callback)
    }

    /// Cancels a timer; returns its callback if it had not fired yet.
    pub fn cancel(&mut self, timer: TimerId) -> Option<C> {
        self.timers.cancel(timer)
    }

    /// Timers scheduled and not yet fired or cancelled.
    pub fn timers(&self) -> usize {
        self.timers.len()
    }

    /// How many times other threads had to wake the loop.
    pub fn wakeups(&self) -> u64 {
        self.remote.wakeups.load(Ordering::Relaxed)
    }

    /// Whether anything at all could still happen: ready work, timers or watched descriptors.
    pub fn has_work(&self) -> bool {
        !self.ready.is_empty() || self.timers.len() > 0 || self.io.len() > self.parked.len()
    }

    /// How many descriptors the kernel's set holds: the watched ones and those parked (principle 9).
    pub fn registrations(&self) -> usize {
        self.io.len()
    }

    /// Watches `fd` for reading; the turn reports [`Job::Readable`] while it is readable.
    /// Returns the reader it replaces.
    pub fn add_reader(&mut self, fd: RawFd, reader: C) -> io::Result<Option<C>> {
        self.watch(fd, |w| w.reader.replace(reader))
    }

    /// Watches `fd` for writing; returns the writer it replaces.
    pub fn add_writer(&mut self, fd: RawFd, writer: C) -> io::Result<Option<C>> {
        self.watch(fd, |w| w.writer.replace(writer))
    }

    /// Stops watching `fd` for reading; returns the reader.
    pub fn remove_reader(&mut self, fd: RawFd) -> io::Result<Option<C>> {
        self.watch(fd, |w| w.reader.take())
    }

    /// Stops watching `fd` for writing; returns the writer.
    pub fn remove_writer(&mut self, fd: RawFd) -> io::Result<Option<C>> {
        self.watch(fd, |w| w.writer.take())
    }

    /// The reader of `fd`, if any.
    pub fn reader(&self, fd: RawFd) -> Option<&C> {
        self.io.get_key(fd)?.data.reader.as_ref()
    }

    /// The writer of `fd`, if any.
    pub fn writer(&self, fd: RawFd) -> Option<&C> {
        self.io.get_key(fd)?.data.writer.as_ref()
    }

    /// Applies `change` to the watchers of `fd` and brings the registration in line with it.
    /// A registered descriptor is registered again in place, with one `EPOLL_CTL_MOD` (where a
    /// removal and a new registration would take two), even when only a watcher is replaced: a
    /// descriptor closed while watched and its number reused since is then found out (the kernel
    /// refuses the MOD) and registered anew, never left watched in the map and not in the kernel
    /// (asyncio's bug in *Sockets on the loop*). One with no watcher left is parked (principle 9).
    fn watch(&mut self, fd: RawFd, change: impl FnOnce(&mut Watchers<C>) -> Option<C>) -> io::Result<Option<C>> {
        let unwatched = || Watchers { reader: None, writer: None };
        let registered = self.io.data_mut(fd).map(|watchers| std::mem::replace(watchers, unwatched()));
        let is_registered = registered.is_some();
        let mut watchers = registered.unwrap_or_else(unwatched);
        let previous = change(&mut watchers);
        match (watchers.events(), is_registered) {
            (None, true) => drop(self.parked.insert(fd)), // the key keeps its (empty) watchers
            (None, false) => {}
            (Some(events), true) => {
                self.parked.remove(&fd);
                match self.io.reregister(fd, events) {
                    Ok(key) => key.data = watchers,
                    // The kernel forgot the descriptor (closed, its number maybe reused): anew.
                    Err(_) => drop(self.io.register(fd, events, watchers).map_err(selector_error)?),
                }
            }
            (Some(events), false) => drop(self.io.register(fd, events, watchers).map_err(selector_error)?),
        }
        Ok(previous)
    }

    /// One turn of the loop: wait for I/O (at most until the next timer, not at all if work is
    /// ready), then hand back the ready I/O, the due timers and the callbacks that were ready.
    pub fn turn(&mut self) -> io::Result<Turn<C>> {
        self.turn_within(None)
    }

    /// A turn whose wait lasts at most `limit` (`Some(Duration::ZERO)`: do not sleep at all, as a
    /// loop that was asked to stop must not).
    pub fn turn_within(&mut self, limit: Option<Duration>) -> io::Result<Turn<C>> {
        let mut turn = Turn::new();
        self.turn_into(limit, &mut turn)?;
        Ok(turn)
    }

    /// How long the next turn would wait, at most, if no descriptor became ready: zero when work
    /// is ready or a timer is due, `None` (forever) with no timers. A host that must let go of a
    /// lock to sleep (the GIL) can skip that when this is zero.
    pub fn next_timeout(&mut self) -> Option<Duration> {
        if self.ready.is_empty() { self.timers.until_next(Instant::now()) } else { Some(Duration::ZERO) }
    }

    /// [`turn_within`](Self::turn_within), appending the turn's work to `turn`, a buffer the host
    /// keeps from turn to turn so that a busy loop allocates nothing per turn.
    pub fn turn_into(&mut self, limit: Option<Duration>, turn: &mut Turn<C>) -> io::Result<()> {
        let wait = match limit {
            Some(Duration::ZERO) => limit, // no need to look at the timers to know
            Some(l) => Some(self.next_timeout().map_or(l, |w| w.min(l))),
            None => self.next_timeout(),
        };
        self.wait(wait)?;
        // Principle 2: exactly the callbacks that were ready; whatever they schedule waits a turn.
        // The order is asyncio's: what was ready, then I/O, then due timers.
        if turn.is_empty() {
            // The usual case: the ready queue becomes the turn, and the turn's empty buffer the
            // next ready queue, without copying.
            std::mem::swap(turn, &mut self.ready);
        } else {
            turn.append(&mut self.ready);
        }
        for i in 0..self.io_ready.len() {
            let (fd, events) = self.io_ready[i];
            if !self.parked.is_empty() && self.parked.remove(&fd) {
                // Ready, and nobody watches: level-triggered, it would be reported again. (The
                // error of a descriptor closed since is not one, here and below.)
                drop(self.io.unregister(fd));
                continue;
            }
            if events.contains(Events::READ) {
                turn.push_back(Job::Readable(fd));
            }
            if events.contains(Events::WRITE) {
                turn.push_back(Job::Writable(fd));
            }
        }
        self.io_ready.clear();
        if self.timers.len() > 0 {
            self.timers.take_due(Instant::now(), |callback| turn.push_back(Job::Call(callback)));
        }
        Ok(())
    }

    /// Takes every callback the core holds (ready, timers, readers and writers, and those queued by
    /// other threads) and stops watching every descriptor: what a host does when its loop closes, so
    /// that it can release each callback's resources.
    pub fn drain(&mut self) -> Vec<C> {
        let mut all: Vec<C> = self.ready.drain(..).filter_map(|job| if let Job::Call(c) = job { Some(c) } else { None }).collect();
        all.extend(self.timers.drain());
        self.parked.clear();
        for key in self.io.close() {
            all.extend(key.data.reader.into_iter().chain(key.data.writer));
        }
        all.extend(lock(&self.remote.queue).as_mut().map(std::mem::take).unwrap_or_default());
        all
    }

    /// Puts the callbacks of a turn that was cut short (an exception escaped the host) back at the
    /// front of the ready queue, in order, so that nothing scheduled is lost. I/O jobs are dropped:
    /// level-triggered descriptors are reported again by the next turn.
    pub fn requeue(&mut self, unfinished: Turn<C>) {
        for job in unfinished.into_iter().rev() {
            if let Job::Call(_) = job {
                self.ready.push_front(job);
            }
        }
    }

    /// The selector wait, with the cross-thread hand-shake around it; the ready descriptors go to `io_ready`.
    fn wait(&mut self, mut timeout: Option<Duration>) -> io::Result<()> {
        let may_sleep = timeout != Some(Duration::ZERO);
        if may_sleep {
            // About to sleep: what is parked now was not wanted back (principle 9).
            while let Some(fd) = self.parked.pop_first() {
                drop(self.io.unregister(fd));
            }
        }
        let shared = &self.remote;
        if may_sleep {
            // Say we are going to sleep, then look once more: a thread that queued before seeing
            // the flag has its callback seen here; one that queues after it sees the flag and wakes us.
            shared.sleeping.store(true, Ordering::SeqCst);
            if shared.pending.load(Ordering::SeqCst) {
                timeout = Some(Duration::ZERO);
            }
        }
        // Nothing to watch and no reason to sleep: the system call would only say "nothing".
        let result = if timeout == Some(Duration::ZERO) && self.io.len() == self.parked.len() { Ok(()) } else { self.io.wait_into(timeout, &mut self.io_ready) };
        if may_sleep {
            shared.sleeping.store(false, Ordering::SeqCst);
        }
        // A relaxed look first: a busy loop skips the atomic swap; a callback it misses now is
        // seen by the next turn, and always before the loop sleeps.
        if shared.pending.load(Ordering::Relaxed) && shared.pending.swap(false, Ordering::SeqCst) {
            if let Some(from_threads) = lock(&shared.queue).as_mut() {
                self.ready.extend(from_threads.drain(..).map(Job::Call));
            }
        }
        match result {
            Ok(()) => Ok(()),
            // Principle 8: a signal ends the wait; the turn goes on without I/O.
            Err(SelectorError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(selector_error(e)),
        }
    }
}
