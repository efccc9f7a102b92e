//! The loop core's rules, each on real sockets, threads and signals, including regressions other
//! loops shipped: already-due timers starving I/O, a self-rescheduling callback starving I/O, EINTR.

use event_loop::{Core, Job};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

fn calls(turn: impl IntoIterator<Item = Job<&'static str>>) -> Vec<String> {
    turn.into_iter()
        .map(|job| match job {
            Job::Call(name) => name.to_string(),
            Job::Readable(_) => "readable".into(),
            Job::Writable(_) => "writable".into(),
        })
        .collect()
}

#[test]
fn a_turn_runs_what_was_ready_and_defers_what_it_schedules() {
    let mut core = Core::new().unwrap();
    core.call_soon("a");
    core.call_soon("b");
    let turn = core.turn().unwrap();
    core.call_soon("scheduled during the turn");
    assert_eq!(calls(turn), ["a", "b"]);
    assert_eq!(calls(core.turn().unwrap()), ["scheduled during the turn"]);
}

#[test]
fn timers_fire_in_deadline_then_scheduling_order_and_never_early() {
    let mut core = Core::new().unwrap();
    let start = Instant::now();
    let at = |ms| start + Duration::from_millis(ms);
    core.call_at(at(40), "third");
    core.call_at(at(20), "first");
    core.call_at(at(20), "second");
    let mut fired = Vec::new();
    while fired.len() < 3 {
        for name in calls(core.turn().unwrap()) {
            let elapsed = start.elapsed();
            fired.push(name.clone());
            let due = if name == "third" { 40 } else { 20 };
            assert!(elapsed >= Duration::from_millis(due), "{name} fired after {elapsed:?}");
        }
    }
    assert_eq!(fired, ["first", "second", "third"]);
}

#[test]
fn a_cancelled_timer_never_fires_and_its_callback_comes_back() {
    let mut core = Core::new().unwrap();
    let id = core.call_later(Duration::from_millis(1), "cancelled");
    core.call_later(Duration::from_millis(5), "kept");
    assert_eq!(core.cancel(id), Some("cancelled"));
    assert_eq!(core.timers(), 1);
    let mut fired = Vec::new();
    while core.timers() > 0 {
        fired.extend(calls(core.turn().unwrap()));
    }
    assert_eq!(fired, ["kept"]);
}

#[test]
fn the_wait_sleeps_until_the_next_deadline() {
    let mut core = Core::new().unwrap();
    core.call_later(Duration::from_millis(60), "wake");
    let start = Instant::now();
    let mut turns = 0;
    while core.timers() > 0 {
        core.turn().unwrap();
        turns += 1;
    }
    assert!(start.elapsed() >= Duration::from_millis(60));
    assert!(turns <= 3, "slept instead of spinning: {turns} turns");
}

#[test]
fn already_due_timers_do_not_starve_io() {
    let (reader, mut writer) = UnixStream::pair().unwrap();
    let mut core = Core::new().unwrap();
    core.add_reader(reader.as_raw_fd(), "reader").unwrap();
    writer.write_all(b"x").unwrap();
    // A timer that is always already due: the loop never has a reason to sleep.
    core.call_at(Instant::now(), "due");
    let mut heard = false;
    for _ in 0..3 {
        for job in core.turn().unwrap() {
            match job {
                Job::Readable(fd) => heard |= fd == reader.as_raw_fd(),
                Job::Call(_) => {
                    core.call_at(Instant::now(), "due");
                }
                Job::Writable(_) => unreachable!(),
            }
        }
    }
    assert!(heard, "the socket was heard although a due timer was always waiting");
}

#[test]
fn a_callback_that_reschedules_itself_forever_does_not_starve_io() {
    let (reader, mut writer) = UnixStream::pair().unwrap();
    let mut core = Core::new().unwrap();
    core.add_reader(reader.as_raw_fd(), "reader").unwrap();
    core.call_soon("again");
    writer.write_all(b"x").unwrap();
    let turn = core.turn().unwrap();
    let names = calls(turn);
    assert_eq!(names, ["again", "readable"], "one turn: the old callback, then the I/O");
    core.call_soon("again"); // it reschedules itself; it runs next turn, after I/O is polled again
    assert_eq!(calls(core.turn().unwrap()), ["again", "readable"]);
}

#[test]
fn io_is_level_triggered_and_removed_watchers_are_not_reported() {
    let (reader, mut writer) = UnixStream::pair().unwrap();
    let fd = reader.as_raw_fd();
    let mut core = Core::new().unwrap();
    assert_eq!(core.add_reader(fd, "first reader").unwrap(), None);
    assert_eq!(core.add_reader(fd, "second reader").unwrap(), Some("first reader"));
    writer.write_all(b"x").unwrap();
    core.call_soon("tick");
    assert_eq!(core.turn().unwrap(), [Job::Call("tick"), Job::Readable(fd)]);
    core.call_soon("tick");
    assert_eq!(core.turn().unwrap(), [Job::Call("tick"), Job::Readable(fd)], "not read: reported again");
    assert_eq!(core.reader(fd), Some(&"second reader"));
    assert_eq!(core.remove_reader(fd).unwrap(), Some("second reader"));
    core.call_soon("tick");
    assert_eq!(core.turn().unwrap(), [Job::Call("tick")]);
    assert!(!core.has_work());
}

#[test]
fn a_descriptor_number_that_names_another_socket_since_is_watched_anew() {
    let (watched, _peer) = UnixStream::pair().unwrap();
    let fd = watched.as_raw_fd();
    let mut core = Core::new().unwrap();
    core.add_reader(fd, "reader").unwrap();
    // The number now names another socket (its first file closed without remove_reader): the
    // kernel forgot the registration, the core did not.
    let (other, mut other_peer) = UnixStream::pair().unwrap();
    // SAFETY: both descriptors are open and owned here; dup2 closes the first file atomically.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), fd) }, fd);
    // A change of events is a modify, which the kernel refuses (ENOENT): the core registers anew.
    assert_eq!(core.add_writer(fd, "writer").unwrap(), None);
    other_peer.write_all(b"x").unwrap();
    core.call_soon("tick");
    assert_eq!(core.turn().unwrap(), [Job::Call("tick"), Job::Readable(fd), Job::Writable(fd)]);
    assert_eq!((core.reader(fd), core.writer(fd)), (Some(&"reader"), Some(&"writer")));

    // The same with the events unchanged (a reader replaced by a reader): asyncio's selector makes
    // no system call then and keeps watching a registration the kernel dropped; the core asks.
    // (The second socket is closed first, as a program that reuses a number has closed the old
    // file: a file still open elsewhere keeps its epoll registration, on any loop.)
    drop(other);
    let (third, mut third_peer) = UnixStream::pair().unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::dup2(third.as_raw_fd(), fd) }, fd);
    assert_eq!(core.add_reader(fd, "new reader").unwrap(), Some("reader"));
    third_peer.write_all(b"y").unwrap();
    core.call_soon("tick");
    assert_eq!(core.turn().unwrap(), [Job::Call("tick"), Job::Readable(fd), Job::Writable(fd)]);
}

#[test]
fn readers_and_writers_of_one_descriptor_are_independent() {
    let (a, _b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let mut core = Core::new().unwrap();
    core.add_reader(fd, "reader").unwrap();
    core.add_writer(fd, "writer").unwrap();
    core.call_soon("tick");
    assert_eq!(core.turn().unwrap(), [Job::Call("tick"), Job::Writable(fd)]);
    core.remove_writer(fd).unwrap();
    assert_eq!(core.reader(fd), Some(&"reader"));
    assert_eq!(core.writer(fd), None);
}

#[test]
fn other_threads_wake_a_sleeping_loop_once_per_batch() {
    let mut core: Core<u32> = Core::new().unwrap();
    let remote = core.remote();
    // The loop is awake (not in a wait): calls queue without writing to the waker.
    for n in 0..100 {
        remote.call_soon_threadsafe(n).unwrap();
    }
    assert_eq!(core.wakeups(), 0);
    assert_eq!(core.turn().unwrap().len(), 100);

    // The loop sleeps with nothing to do: a burst from another thread costs a wake-up per sleep
    // it interrupts, not one per call. (The loop may drain part of the burst and sleep again before
    // the rest arrives, so the count is bounded by the sleeps, not fixed at one.)
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        for n in 0..100 {
            remote.call_soon_threadsafe(n).unwrap();
        }
    });
    let start = Instant::now();
    let (mut received, mut sleeps) = (0, 0);
    while received < 100 {
        sleeps += 1; // every turn here starts with nothing to do, so it sleeps
        received += core.turn().unwrap().len();
    }
    sender.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(core.wakeups() >= 1 && core.wakeups() <= sleeps, "{} wake-ups for {sleeps} sleeps", core.wakeups());
    assert!(core.wakeups() < 100, "batched: {} wake-ups for 100 calls", core.wakeups());
}

#[test]
fn notify_keeps_the_next_wait_from_sleeping_and_ends_a_sleep_in_progress() {
    let mut core: Core<u32> = Core::new().unwrap();
    let remote = core.remote();
    // Before the wait: the turn does not sleep (nothing else would wake it), and no waker write.
    remote.notify().unwrap();
    let start = Instant::now();
    assert!(core.turn().unwrap().is_empty());
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(core.wakeups(), 0);

    // During the wait: one write ends it.
    let notifier = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        remote.notify().unwrap();
    });
    let start = Instant::now();
    assert!(core.turn().unwrap().is_empty());
    notifier.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(core.wakeups(), 1);
}

extern "C" fn ignore_signal(_: libc::c_int) {}

#[test]
fn a_signal_during_the_wait_ends_it_without_an_error() {
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as *const () as usize;
        assert_eq!(libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()), 0);
    }
    let mut core: Core<&str> = Core::new().unwrap();
    core.call_later(Duration::from_secs(10), "far away");
    let me = unsafe { libc::pthread_self() } as usize;
    let signaller = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
    });
    let start = Instant::now();
    assert!(core.turn().unwrap().is_empty());
    assert!(start.elapsed() < Duration::from_secs(5), "the turn ended at the signal");
    signaller.join().unwrap();
    assert_eq!(core.timers(), 1);
}

#[test]
fn a_turn_within_zero_never_sleeps() {
    let mut core: Core<&str> = Core::new().unwrap();
    core.call_later(Duration::from_secs(10), "far away");
    let start = Instant::now();
    assert!(core.turn_within(Some(Duration::ZERO)).unwrap().is_empty());
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn an_unfinished_turn_is_requeued_in_order_before_new_work() {
    let mut core = Core::new().unwrap();
    for name in ["a", "b", "c"] {
        core.call_soon(name);
    }
    let mut turn = core.turn().unwrap();
    assert_eq!(turn.pop_front(), Some(Job::Call("a"))); // "a" ran, then raised
    core.call_soon("scheduled by a");
    core.requeue(turn);
    assert_eq!(calls(core.turn().unwrap()), ["b", "c", "scheduled by a"]);
}

#[test]
fn a_remote_outliving_its_core_keeps_nothing_alive() {
    let core: Core<String> = Core::new().unwrap();
    let remote = core.remote();
    drop(core);
    let error = remote.call_soon_threadsafe("dropped".to_string()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotConnected);
    remote.wake().unwrap(); // harmless
}

#[test]
fn drain_hands_back_every_callback() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut core = Core::new().unwrap();
    let remote = core.remote();
    core.call_soon("ready");
    core.call_later(Duration::from_secs(60), "timer");
    core.add_reader(a.as_raw_fd(), "reader").unwrap();
    remote.call_soon_threadsafe("from a thread").unwrap();
    let mut all = core.drain();
    all.sort();
    assert_eq!(all, ["from a thread", "reader", "ready", "timer"]);
    assert!(!core.has_work());
}

#[test]
fn a_descriptor_whose_last_watcher_goes_is_parked_until_the_loop_sleeps() {
    let (watched, mut peer) = UnixStream::pair().unwrap();
    let fd = watched.as_raw_fd();
    let mut core = Core::new().unwrap();
    core.add_reader(fd, "first").unwrap();
    assert_eq!(core.remove_reader(fd).unwrap(), Some("first"));
    assert!(!core.has_work(), "a parked descriptor is not work");
    assert_eq!(core.registrations(), 1, "still in the kernel's set");

    // Watched again before the loop sleeps: one MOD, and reported as any watched descriptor.
    core.add_reader(fd, "second").unwrap();
    peer.write_all(b"x").unwrap();
    assert_eq!(core.turn_within(Some(Duration::ZERO)).unwrap(), [Job::Readable(fd)]);
    assert_eq!(core.reader(fd), Some(&"second"));

    // Parked while readable: the kernel reports it, the core unregisters it and reports nothing.
    // (With nothing watched at all, a turn that must not sleep skips the wait; another socket is.)
    let (other, _other_peer) = UnixStream::pair().unwrap();
    core.add_reader(other.as_raw_fd(), "other").unwrap();
    core.remove_reader(fd).unwrap();
    core.call_soon("tick");
    assert_eq!(core.turn_within(Some(Duration::ZERO)).unwrap(), [Job::Call("tick")]);
    assert_eq!(core.registrations(), 1, "only the other socket");
    core.remove_reader(other.as_raw_fd()).unwrap();
    assert!(core.turn_within(Some(Duration::from_millis(1))).unwrap().is_empty());
    assert_eq!(core.registrations(), 0);

    // Parked and quiet: unregistered before a wait that may sleep.
    core.add_reader(fd, "third").unwrap();
    let mut byte = [0; 1];
    std::io::Read::read_exact(&mut &watched, &mut byte).unwrap();
    core.remove_reader(fd).unwrap();
    assert_eq!(core.registrations(), 1);
    assert!(core.turn_within(Some(Duration::from_millis(1))).unwrap().is_empty());
    assert_eq!(core.registrations(), 0);
}

#[test]
fn a_parked_number_that_names_another_socket_since_is_registered_anew() {
    let (old, _old_peer) = UnixStream::pair().unwrap();
    let fd = old.as_raw_fd();
    let mut core = Core::new().unwrap();
    core.add_reader(fd, "old reader").unwrap();
    core.remove_reader(fd).unwrap(); // parked
    drop(old); // the kernel drops the registration; the core's key stays parked
    let (new, mut new_peer) = UnixStream::pair().unwrap();
    assert_eq!(new.as_raw_fd(), fd);
    core.add_reader(fd, "new reader").unwrap(); // MOD refused: registered anew
    new_peer.write_all(b"x").unwrap();
    assert_eq!(core.turn_within(Some(Duration::from_secs(5))).unwrap(), [Job::Readable(fd)]);
    assert_eq!(core.reader(fd), Some(&"new reader"));
}
