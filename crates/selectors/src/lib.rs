//! Python's `selectors` API, in Rust, over [mio].
//!
//! Taught in the chapter *Selectors* (`book/src/how-async-works/selectors.md`) and used by the chapter
//! *How an event loop works*; the Python binding is `mioloop.selectors.MioSelector`.
//!
//! A [`Selector`] watches file descriptors and reports which are ready, exactly as Python's
//! `selectors.DefaultSelector` does: [`register`](Selector::register) a descriptor with the events
//! to watch ([`Events::READ`], [`Events::WRITE`]) and some data, [`select`](Selector::select) to wait,
//! and get back each ready descriptor's [`Key`] with the events that happened.
//!
//! # Level-triggered, as Python's
//!
//! Python's selectors are *level-triggered*: a descriptor that is still ready is reported by every
//! `select`, so a program that read only half of the data waiting on a socket hears about the other
//! half next time. mio registers every source *edge-triggered* (`EPOLLET` on Linux): the kernel
//! reports a descriptor when it *becomes* ready, and a read that leaves bytes behind, or that races
//! with bytes arriving, may never hear of them again.
//!
//! So the selector uses mio for the poller, the wait, its events and the waker, and registers
//! descriptors itself, with `epoll_ctl` on mio's epoll descriptor and without `EPOLLET`: the kernel
//! then keeps the level-triggered contract, at no cost per wait. (An earlier version kept mio's
//! registrations and *re-armed* every reported descriptor with an `EPOLL_CTL_MOD` before the next
//! wait: the same contract, for one system call per reported descriptor per wait; the chapter
//! *Benchmarks* measured that call.) The data of each registration is the descriptor, which mio
//! hands back as the event's `Token`. This makes the crate Linux-only, as the book's loop is.

use mio::{Poll, Token};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// The token of the selector's waker: no descriptor has it, so `wait` skips its events.
const WAKER: Token = Token(usize::MAX);

/// The events a descriptor is watched for, or was found ready for: a set of [`Events::READ`] and
/// [`Events::WRITE`], with the same bit values as Python's `EVENT_READ` (1) and `EVENT_WRITE` (2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Events(u8);

impl Events {
    /// Readable: data to read, a connection to accept, or the peer hung up.
    pub const READ: Events = Events(1);
    /// Writable: room in the send buffer, or a connection attempt finished.
    pub const WRITE: Events = Events(2);
    const ALL: u8 = 3;

    /// The events with these bits, or `Error::InvalidEvents` for none or unknown bits.
    pub fn from_bits(bits: u64) -> Result<Events, Error> {
        if bits == 0 || bits & !u64::from(Self::ALL) != 0 {
            return Err(Error::InvalidEvents(bits));
        }
        Ok(Events(bits as u8))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `epoll` flags of these events, level-triggered: a hang-up of the peer (`EPOLLRDHUP`)
    /// counts as readable, as in Python's epoll selector.
    fn epoll_flags(self) -> u32 {
        let mut flags = 0;
        if self.contains(Events::READ) {
            flags |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        }
        if self.contains(Events::WRITE) {
            flags |= libc::EPOLLOUT as u32;
        }
        flags
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, other: Events) -> Events {
        Events(self.0 | other.0)
    }
}

impl std::ops::BitAnd for Events {
    type Output = Events;
    fn bitand(self, other: Events) -> Events {
        Events(self.0 & other.0)
    }
}

/// What the selector knows about one registered descriptor: Python's `SelectorKey` without the
/// file object, which belongs to the binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key<T> {
    /// The descriptor, also the mio token.
    pub fd: RawFd,
    /// The events it is watched for.
    pub events: Events,
    /// The caller's data: a callback, a connection, a Python object.
    pub data: T,
}

/// Everything a caller can get wrong, each mapped by the Python binding to the exception the
/// standard library raises for it.
#[derive(Debug)]
pub enum Error {
    /// A negative descriptor (`ValueError`).
    InvalidFd(RawFd),
    /// No events, or bits other than READ and WRITE (`ValueError`).
    InvalidEvents(u64),
    /// The descriptor is registered already (`KeyError`).
    AlreadyRegistered(RawFd),
    /// The descriptor is not registered (`KeyError`).
    NotRegistered(RawFd),
    /// The selector was closed (`ValueError` for I/O, `RuntimeError` for look-ups, as in Python).
    Closed,
    /// The kernel refused (`OSError`); `ErrorKind::Interrupted` only from [`Selector::wait`].
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidFd(fd) => write!(f, "Invalid file descriptor: {fd}"),
            Error::InvalidEvents(bits) => write!(f, "Invalid events: {bits}"),
            Error::AlreadyRegistered(fd) => write!(f, "FD {fd} is already registered"),
            Error::NotRegistered(fd) => write!(f, "FD {fd} is not registered"),
            Error::Closed => write!(f, "I/O operation on closed selector"),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Watches descriptors for readiness, level-triggered, like Python's `selectors.DefaultSelector`.
pub struct Selector<T> {
    /// The kernel's poller (epoll on Linux); `None` once closed.
    poll: Option<Poll>,
    /// mio's event buffer, grown to the number of registered descriptors so that one wait can
    /// report every ready descriptor, as Python's epoll selector does.
    events: mio::Events,
    /// Registered descriptors, in descriptor order (Python keeps registration order; the book only
    /// relies on iteration being deterministic).
    keys: FdTable<T>,
}

/// Keys indexed by descriptor, as libuv keeps its watchers: descriptors are small integers, and a
/// look-up is made for every event of every wait, so an array beats a search tree. The array
/// grows to the largest descriptor registered and keeps its size (a slot is a few dozen bytes:
/// a megabyte per 30,000 descriptors).
struct FdTable<T> {
    slots: Vec<Option<Key<T>>>,
    len: usize,
}

impl<T> FdTable<T> {
    const fn new() -> Self {
        FdTable { slots: Vec::new(), len: 0 }
    }

    fn get(&self, fd: RawFd) -> Option<&Key<T>> {
        self.slots.get(usize::try_from(fd).ok()?)?.as_ref()
    }

    fn get_mut(&mut self, fd: RawFd) -> Option<&mut Key<T>> {
        self.slots.get_mut(usize::try_from(fd).ok()?)?.as_mut()
    }

    fn contains(&self, fd: RawFd) -> bool {
        self.get(fd).is_some()
    }

    /// Adds the key of a descriptor that has none (`key.fd` is not negative).
    fn insert(&mut self, key: Key<T>) -> &mut Key<T> {
        let index = usize::try_from(key.fd).expect("a registered descriptor is not negative");
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.len += 1;
        self.slots[index].insert(key)
    }

    fn remove(&mut self, fd: RawFd) -> Option<Key<T>> {
        let key = self.slots.get_mut(usize::try_from(fd).ok()?)?.take()?;
        self.len -= 1;
        Some(key)
    }

    fn values(&self) -> impl Iterator<Item = &Key<T>> {
        self.slots.iter().flatten()
    }

    fn take_all(&mut self) -> Vec<Key<T>> {
        self.len = 0;
        std::mem::take(&mut self.slots).into_iter().flatten().collect()
    }
}

/// Adds, changes or removes `fd` in the poller's epoll set, level-triggered, with the descriptor
/// as the event's data (mio's `Token`).
fn epoll_ctl(poll: &Poll, op: libc::c_int, fd: RawFd, events: Events) -> io::Result<()> {
    let mut event = libc::epoll_event { events: events.epoll_flags(), u64: fd as u64 };
    // SAFETY: `poll` owns a live epoll descriptor; `event` is a valid epoll_event for the call.
    if unsafe { libc::epoll_ctl(poll.as_raw_fd(), op, fd, &mut event) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl<T> Selector<T> {
    /// A new selector with its own kernel poller.
    pub fn new() -> io::Result<Self> {
        Ok(Selector { poll: Some(Poll::new()?), events: mio::Events::with_capacity(64), keys: FdTable::new() })
    }

    fn poll(&self) -> Result<&Poll, Error> {
        self.poll.as_ref().ok_or(Error::Closed)
    }

    /// Starts watching `fd` for `events`; the key is returned, as in Python.
    ///
    /// The selector does not own the descriptor: closing it stays the caller's job, and a
    /// descriptor closed while registered should still be unregistered.
    pub fn register(&mut self, fd: RawFd, events: Events, data: T) -> Result<&Key<T>, Error> {
        if fd < 0 {
            return Err(Error::InvalidFd(fd));
        }
        if events.is_empty() {
            return Err(Error::InvalidEvents(0));
        }
        let poll = self.poll()?;
        if self.keys.contains(fd) {
            return Err(Error::AlreadyRegistered(fd));
        }
        epoll_ctl(poll, libc::EPOLL_CTL_ADD, fd, events)?;
        Ok(self.keys.insert(Key { fd, events, data }))
    }

    /// Stops watching `fd` and hands back its key.
    ///
    /// If the descriptor was closed in the meantime the kernel has forgotten it already; that is
    /// not an error, exactly as in Python.
    pub fn unregister(&mut self, fd: RawFd) -> Result<Key<T>, Error> {
        let key = self.keys.remove(fd).ok_or(Error::NotRegistered(fd))?;
        if let Some(poll) = &self.poll {
            let _closed_already = epoll_ctl(poll, libc::EPOLL_CTL_DEL, fd, key.events);
        }
        Ok(key)
    }

    /// Changes the events and data of a registered descriptor.
    ///
    /// Only a change of events reaches the kernel. If the kernel refuses it, the descriptor is
    /// unregistered before the error is returned, so the selector never believes in a registration
    /// the kernel does not have (CPython bpo-30014).
    pub fn modify(&mut self, fd: RawFd, events: Events, data: T) -> Result<&Key<T>, Error> {
        let key = self.modify_events(fd, events)?;
        key.data = data;
        Ok(key)
    }

    /// Changes the events of a registered descriptor, keeping its data; as [`modify`](Self::modify).
    pub fn modify_events(&mut self, fd: RawFd, events: Events) -> Result<&mut Key<T>, Error> {
        let current = self.keys.get(fd).ok_or(Error::NotRegistered(fd))?.events;
        if current == events {
            return Ok(self.keys.get_mut(fd).expect("checked above"));
        }
        self.reregister(fd, events)
    }

    /// Registers a registered descriptor again, for `events`, keeping its data: one system call
    /// (`EPOLL_CTL_MOD`) even when the events are the same, so an error says the kernel no longer
    /// has the registration, because the descriptor was closed and its number may name another
    /// file now (see *Sockets on the loop*). As with [`modify`](Self::modify), a refused
    /// registration is dropped before the error is returned.
    pub fn reregister(&mut self, fd: RawFd, events: Events) -> Result<&mut Key<T>, Error> {
        if events.is_empty() {
            return Err(Error::InvalidEvents(0));
        }
        let poll = self.poll.as_ref().ok_or(Error::Closed)?;
        if !self.keys.contains(fd) {
            return Err(Error::NotRegistered(fd));
        }
        if let Err(e) = epoll_ctl(poll, libc::EPOLL_CTL_MOD, fd, events) {
            self.keys.remove(fd);
            let _ = epoll_ctl(poll, libc::EPOLL_CTL_DEL, fd, events);
            return Err(e.into());
        }
        let key = self.keys.get_mut(fd).expect("checked above");
        key.events = events;
        Ok(key)
    }

    /// The data of `fd`, if registered, to change in place.
    pub fn data_mut(&mut self, fd: RawFd) -> Option<&mut T> {
        self.keys.get_mut(fd).map(|key| &mut key.data)
    }

    /// The key of `fd`, if registered.
    pub fn get_key(&self, fd: RawFd) -> Option<&Key<T>> {
        self.keys.get(fd)
    }

    /// Every registered key, in descriptor order.
    pub fn keys(&self) -> impl Iterator<Item = &Key<T>> {
        self.keys.values()
    }

    pub fn len(&self) -> usize {
        self.keys.len
    }

    pub fn is_empty(&self) -> bool {
        self.keys.len == 0
    }

    pub fn is_closed(&self) -> bool {
        self.poll.is_none()
    }

    /// Waits until a registered descriptor is ready or `timeout` passes (`None`: no limit;
    /// zero: just look) and returns each ready descriptor's key with the events that happened.
    ///
    /// A signal that interrupts the wait does not end it: the wait resumes for the time that is
    /// left, as Python does since PEP 475.
    pub fn select(&mut self, timeout: Option<Duration>) -> Result<Vec<(&Key<T>, Events)>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let ready = loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match self.wait(left) {
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        Ok(ready.into_iter().filter_map(|(fd, events)| Some((self.keys.get(fd)?, events))).collect())
    }

    /// One wait, as [`select`](Self::select) but returning descriptors, and returning
    /// `ErrorKind::Interrupted` when a signal arrives, so that a caller (the Python binding) can run
    /// signal handlers before it waits again.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<(RawFd, Events)>, Error> {
        let mut ready = Vec::new();
        self.wait_into(timeout, &mut ready)?;
        Ok(ready)
    }

    /// [`wait`](Self::wait), appending to `ready`: a loop that waits thousands of times a second
    /// keeps one buffer instead of allocating a list per wait.
    pub fn wait_into(&mut self, timeout: Option<Duration>, ready: &mut Vec<(RawFd, Events)>) -> Result<(), Error> {
        let poll = self.poll.as_mut().ok_or(Error::Closed)?;
        if self.events.capacity() < self.keys.len {
            self.events = mio::Events::with_capacity(self.keys.len.next_power_of_two());
        }
        poll.poll(&mut self.events, timeout)?;

        for event in self.events.iter() {
            if event.token() == WAKER {
                continue; // its only job was to end the wait
            }
            let fd = event.token().0 as RawFd;
            let Some(key) = self.keys.get(fd) else { continue };
            // Hang-ups and errors wake both directions, as Python's epoll selector reports them.
            let mut happened = Events::default();
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                happened = happened | Events::READ;
            }
            if event.is_writable() || event.is_write_closed() || event.is_error() {
                happened = happened | Events::WRITE;
            }
            let happened = happened & key.events;
            if !happened.is_empty() {
                ready.push((fd, happened));
            }
        }
        Ok(())
    }

    /// Closes the kernel poller and hands back every key (their data is the caller's to drop).
    /// Closing twice is harmless.
    pub fn close(&mut self) -> Vec<Key<T>> {
        self.poll = None;
        self.keys.take_all()
    }

    /// A handle that another thread can use to end the current (or next) wait early: the
    /// self-pipe of older event loops, as an `eventfd` on Linux. A woken wait reports no descriptor
    /// for it; it only returns. One per selector.
    pub fn waker(&self) -> Result<mio::Waker, Error> {
        Ok(mio::Waker::new(self.poll()?.registry(), WAKER)?)
    }

    /// The poller's own descriptor (Python's `fileno()`), or `Error::Closed`.
    pub fn fileno(&self) -> Result<RawFd, Error> {
        Ok(self.poll()?.as_raw_fd())
    }
}
