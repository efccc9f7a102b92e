//! Every rule of the selector, on real sockets, pipes, threads and signals.

use selectors::{Error, Events, Selector};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

const NOW: Option<Duration> = Some(Duration::ZERO);

fn ready_fds<T>(selector: &mut Selector<T>, timeout: Option<Duration>) -> Vec<(i32, u8)> {
    selector.select(timeout).unwrap().into_iter().map(|(key, events)| (key.fd, events.bits())).collect()
}

#[test]
fn register_returns_the_key_and_refuses_what_python_refuses() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    let key = selector.register(a.as_raw_fd(), Events::READ, "data").unwrap();
    assert_eq!((key.fd, key.events, key.data), (a.as_raw_fd(), Events::READ, "data"));
    assert!(matches!(selector.register(a.as_raw_fd(), Events::WRITE, "again"), Err(Error::AlreadyRegistered(_))));
    assert!(matches!(selector.register(-10, Events::READ, "negative"), Err(Error::InvalidFd(-10))));
    assert!(matches!(Events::from_bits(0), Err(Error::InvalidEvents(0))));
    assert!(matches!(Events::from_bits(999_999), Err(Error::InvalidEvents(999_999))));
    assert_eq!(Events::from_bits(3).unwrap(), Events::READ | Events::WRITE);
    assert_eq!(selector.len(), 1);
}

#[test]
fn a_descriptor_the_kernel_refuses_is_not_kept() {
    let mut selector = Selector::new().unwrap();
    let file = std::fs::File::open("Cargo.toml").unwrap(); // epoll refuses regular files (EPERM)
    let refused = selector.register(file.as_raw_fd(), Events::READ, ()).unwrap_err();
    assert!(matches!(&refused, Error::Io(e) if e.raw_os_error() == Some(libc::EPERM)), "{refused:?}");
    assert!(selector.is_empty());
}

#[test]
fn readiness_is_level_triggered() {
    let (mut reader, mut writer) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(reader.as_raw_fd(), Events::READ, ()).unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), []);

    writer.write_all(b"0123456789").unwrap();
    let fd = reader.as_raw_fd();
    assert_eq!(ready_fds(&mut selector, NOW), [(fd, 1)]);
    // not read: reported again, and again
    assert_eq!(ready_fds(&mut selector, NOW), [(fd, 1)]);
    let mut half = [0; 5];
    reader.read_exact(&mut half).unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), [(fd, 1)], "five bytes are still waiting");
    reader.read_exact(&mut half).unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), [], "drained: quiet");
}

#[test]
fn a_writable_socket_is_reported_by_every_select() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::WRITE, ()).unwrap();
    for _ in 0..3 {
        assert_eq!(ready_fds(&mut selector, NOW), [(a.as_raw_fd(), 2)]);
    }
}

#[test]
fn read_and_write_come_in_one_entry() {
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"x").unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::READ | Events::WRITE, ()).unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), [(a.as_raw_fd(), 3)]);
}

#[test]
fn only_the_events_asked_for_are_reported() {
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"x").unwrap(); // a is readable and writable
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::WRITE, ()).unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), [(a.as_raw_fd(), 2)]);
}

#[test]
fn modify_changes_events_and_data() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let mut selector = Selector::new().unwrap();
    selector.register(fd, Events::READ, "first").unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), []);
    let key = selector.modify(fd, Events::WRITE, "second").unwrap();
    assert_eq!((key.events, key.data), (Events::WRITE, "second"));
    assert_eq!(ready_fds(&mut selector, NOW), [(fd, 2)]);
    selector.modify(fd, Events::WRITE, "third").unwrap();
    assert_eq!(selector.get_key(fd).unwrap().data, "third");
    b.write_all(b"x").unwrap();
    selector.modify(fd, Events::READ, "fourth").unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), [(fd, 1)]);
    assert!(matches!(selector.modify(999_999, Events::READ, "unknown"), Err(Error::NotRegistered(999_999))));
}

#[test]
fn a_modify_the_kernel_refuses_unregisters() {
    let (a, b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    let mut selector = Selector::new().unwrap();
    selector.register(fd, Events::READ, ()).unwrap();
    drop(a); // the kernel drops the registration with the last reference to the socket
    drop(b);
    assert!(matches!(selector.modify(fd, Events::WRITE, ()), Err(Error::Io(_))));
    assert!(selector.get_key(fd).is_none(), "no registration the kernel does not have");
}

#[test]
fn unregister_works_after_the_descriptor_is_closed() {
    let (a, b) = UnixStream::pair().unwrap();
    let (ra, rb) = (a.as_raw_fd(), b.as_raw_fd());
    let mut selector = Selector::new().unwrap();
    selector.register(ra, Events::READ, 'a').unwrap();
    selector.register(rb, Events::WRITE, 'b').unwrap();
    drop(a);
    drop(b);
    assert_eq!(selector.unregister(ra).unwrap().data, 'a');
    assert_eq!(selector.unregister(rb).unwrap().data, 'b');
    assert!(matches!(selector.unregister(ra), Err(Error::NotRegistered(_))));
}

#[test]
fn a_closed_descriptor_still_registered_does_not_break_select() {
    let (a, b) = UnixStream::pair().unwrap();
    let (c, _d) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::WRITE, ()).unwrap();
    selector.register(c.as_raw_fd(), Events::WRITE, ()).unwrap();
    assert_eq!(ready_fds(&mut selector, NOW).len(), 2);
    drop(a);
    drop(b);
    assert_eq!(ready_fds(&mut selector, NOW), [(c.as_raw_fd(), 2)]);
}

#[test]
fn select_zero_never_blocks_and_a_timeout_never_fires_early() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::READ, ()).unwrap();
    let start = Instant::now();
    for _ in 0..100 {
        assert_eq!(ready_fds(&mut selector, NOW), []);
    }
    assert!(start.elapsed() < Duration::from_secs(1));

    let timeout = Duration::from_millis(120);
    let start = Instant::now();
    assert_eq!(ready_fds(&mut selector, Some(timeout)), []);
    assert!(start.elapsed() >= timeout, "woke after {:?}", start.elapsed());
}

#[test]
fn select_without_timeout_waits_for_another_thread() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::READ, ()).unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        b.write_all(b"wake").unwrap();
        b
    });
    assert_eq!(ready_fds(&mut selector, None), [(a.as_raw_fd(), 1)]);
    writer.join().unwrap();
}

#[test]
fn pipes_and_hang_ups() {
    let (reader, writer) = std::io::pipe().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(reader.as_raw_fd(), Events::READ, "r").unwrap();
    selector.register(writer.as_raw_fd(), Events::WRITE, "w").unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), [(writer.as_raw_fd(), 2)]);
    selector.unregister(writer.as_raw_fd()).unwrap();
    drop(writer);
    assert_eq!(ready_fds(&mut selector, NOW), [(reader.as_raw_fd(), 1)], "end of file is readable");
}

#[test]
fn tcp_on_loopback_accept_and_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(listener.as_raw_fd(), Events::READ, "listener").unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), []);
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let ready = selector.select(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(ready.len(), 1);
    assert_eq!(*ready[0].0, selectors::Key { fd: listener.as_raw_fd(), events: Events::READ, data: "listener" });
    let (server_side, _) = listener.accept().unwrap();
    assert_eq!(ready_fds(&mut selector, NOW), [], "accepted: the backlog is empty");
    drop((client, server_side));
}

#[test]
fn one_select_reports_every_ready_descriptor() {
    let pairs: Vec<_> = (0..600).map(|_| UnixStream::pair().unwrap()).collect();
    let mut selector = Selector::new().unwrap();
    for (a, _) in &pairs {
        selector.register(a.as_raw_fd(), Events::WRITE, ()).unwrap();
    }
    assert_eq!(selector.select(NOW).unwrap().len(), 600);
}

#[test]
fn a_closed_selector_refuses_work_and_closing_twice_is_harmless() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::READ, 7).unwrap();
    assert!(selector.fileno().unwrap() >= 0);
    let keys = selector.close();
    assert_eq!(keys.len(), 1);
    assert!(selector.close().is_empty());
    assert!(selector.is_closed());
    assert!(matches!(selector.register(a.as_raw_fd(), Events::READ, 8), Err(Error::Closed)));
    assert!(matches!(selector.select(NOW), Err(Error::Closed)));
    assert!(matches!(selector.fileno(), Err(Error::Closed)));
    assert!(matches!(selector.unregister(a.as_raw_fd()), Err(Error::NotRegistered(_))));
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// A signal that interrupts the wait: `wait` reports it, `select` resumes for the time left.
#[test]
fn a_signal_interrupts_wait_and_select_resumes() {
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as *const () as usize;
        action.sa_flags = 0; // no SA_RESTART: epoll_wait fails with EINTR
        assert_eq!(libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()), 0);
    }
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::READ, ()).unwrap();

    let interrupt_me = |after_ms| {
        let me = unsafe { libc::pthread_self() } as usize;
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(after_ms));
            unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR2) };
        })
    };

    let signaller = interrupt_me(50);
    let interrupted = selector.wait(Some(Duration::from_secs(10))).unwrap_err();
    assert!(matches!(&interrupted, Error::Io(e) if e.kind() == std::io::ErrorKind::Interrupted), "{interrupted:?}");
    signaller.join().unwrap();

    let signaller = interrupt_me(50);
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    assert_eq!(ready_fds(&mut selector, Some(timeout)), []);
    assert!(start.elapsed() >= timeout, "resumed for the time left: {:?}", start.elapsed());
    signaller.join().unwrap();
}

#[test]
fn another_thread_can_end_a_wait_without_a_descriptor() {
    let mut selector: Selector<()> = Selector::new().unwrap();
    let waker = selector.waker().unwrap();
    let wake = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        waker.wake().unwrap();
        // Kept alive until the wait has returned: closing an eventfd takes its queued event with it.
        waker
    });
    let start = Instant::now();
    assert_eq!(ready_fds(&mut selector, Some(Duration::from_secs(10))), []);
    assert!(start.elapsed() < Duration::from_secs(5), "woken, not timed out");
    drop(wake.join().unwrap());
}

#[test]
fn modify_events_keeps_the_data() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::READ, "kept").unwrap();
    let key = selector.modify_events(a.as_raw_fd(), Events::WRITE).unwrap();
    assert_eq!((key.events, key.data), (Events::WRITE, "kept"));
    assert_eq!(ready_fds(&mut selector, NOW), vec![(a.as_raw_fd(), 2)]);
    *selector.data_mut(a.as_raw_fd()).unwrap() = "changed";
    assert_eq!(selector.get_key(a.as_raw_fd()).unwrap().data, "changed");
    assert!(matches!(selector.modify_events(a.as_raw_fd(), Events::default()), Err(Error::InvalidEvents(0))));
}

/// Keys live in a table indexed by descriptor: whatever the order of registration, they are
/// listed in descriptor order, a freed slot is reused, and the count follows.
#[test]
fn keys_are_listed_in_descriptor_order_whatever_the_registration_order() {
    let pairs: Vec<_> = (0..6).map(|_| UnixStream::pair().unwrap()).collect();
    let mut fds: Vec<i32> = pairs.iter().map(|(a, _)| a.as_raw_fd()).collect();
    let mut selector = Selector::new().unwrap();
    for (i, &fd) in fds.iter().enumerate().rev() {
        selector.register(fd, Events::READ, i).unwrap();
    }
    fds.sort();
    assert_eq!(selector.keys().map(|key| key.fd).collect::<Vec<_>>(), fds);
    assert_eq!(selector.len(), 6);
    let removed = selector.unregister(fds[2]).unwrap();
    assert_eq!((removed.fd, selector.len()), (fds[2], 5));
    assert!(selector.get_key(fds[2]).is_none() && selector.data_mut(fds[2]).is_none());
    assert!(matches!(selector.unregister(fds[2]), Err(Error::NotRegistered(_))));
    selector.register(fds[2], Events::WRITE, 99).unwrap();
    assert_eq!(selector.keys().map(|key| key.fd).collect::<Vec<_>>(), fds);
    assert_eq!(selector.get_key(fds[2]).map(|key| key.data), Some(99));
    assert!(selector.get_key(-1).is_none() && selector.get_key(1 << 20).is_none());
}

/// `wait_into` appends to the caller's buffer, which a loop keeps from wait to wait.
#[test]
fn wait_into_appends_to_the_buffer_it_is_given() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mut selector = Selector::new().unwrap();
    selector.register(a.as_raw_fd(), Events::WRITE, ()).unwrap();
    let mut ready = vec![(-7, Events::READ)];
    selector.wait_into(NOW, &mut ready).unwrap();
    assert_eq!(ready.iter().map(|&(fd, events)| (fd, events.bits())).collect::<Vec<_>>(), [(-7, Events::READ.bits()), (a.as_raw_fd(), Events::WRITE.bits())]);
}
