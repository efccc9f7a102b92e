//! The executor: block_on, spawn and join, panics, sleep, wakes from other threads, TCP on loopback.

use event_loop::executor::{JoinError, block_on, sleep, spawn, yield_now};
use event_loop::net::{TcpListener, TcpStream};
use std::cell::RefCell;
use std::rc::Rc;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn block_on_returns_the_output() {
    assert_eq!(block_on(async { 6 * 7 }).unwrap(), 42);
}

#[test]
fn spawned_tasks_interleave_at_each_yield() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let task = |name: &'static str, log: Rc<RefCell<Vec<String>>>| async move {
        for i in 0..3 {
            log.borrow_mut().push(format!("{name}{i}"));
            yield_now().await;
        }
        name.len()
    };
    let inner = log.clone();
    let lengths = block_on(async move {
        let a = spawn(task("a", inner.clone()));
        let bb = spawn(task("bb", inner));
        (a.await.unwrap(), bb.await.unwrap())
    })
    .unwrap();
    assert_eq!(lengths, (1, 2));
    assert_eq!(*log.borrow(), ["a0", "bb0", "a1", "bb1", "a2", "bb2"]);
}

#[test]
fn a_panicking_task_reports_through_its_handle_and_the_loop_goes_on() {
    let result = block_on(async {
        let doomed = spawn(async { panic!("task failed on purpose") });
        let fine = spawn(async { "fine" });
        (doomed.await, fine.await.unwrap())
    })
    .unwrap();
    match result {
        (Err(JoinError::Panicked(payload)), "fine") => {
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"task failed on purpose"))
        }
        other => panic!("unexpected {:?}", other.0.map(|_| ())),
    }
}

#[test]
fn sleeps_end_in_deadline_order_and_never_early() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    let inner = order.clone();
    block_on(async move {
        let mut handles = Vec::new();
        for (name, ms) in [("30ms", 30), ("10ms", 10), ("20ms", 20)] {
            let order = inner.clone();
            handles.push(spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                assert!(start.elapsed() >= Duration::from_millis(ms));
                order.borrow_mut().push(name);
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(*order.borrow(), ["10ms", "20ms", "30ms"]);
}

#[test]
fn a_waker_called_from_another_thread_wakes_the_sleeping_loop() {
    let start = Instant::now();
    block_on(async {
        let mut sent = None;
        std::future::poll_fn(move |cx| match sent.take() {
            Some(()) => Poll::Ready(()),
            None => {
                let waker = cx.waker().clone();
                thread::spawn(move || {
                    thread::sleep(Duration::from_millis(50));
                    waker.wake();
                });
                sent = Some(());
                Poll::Pending
            }
        })
        .await
    })
    .unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn a_dropped_sleep_cancels_its_timer() {
    block_on(async {
        let early = Instant::now();
        drop(sleep(Duration::from_secs(3600)));
        // Nothing keeps the loop waiting for an hour.
        sleep(Duration::from_millis(5)).await;
        assert!(early.elapsed() < Duration::from_secs(5));
    })
    .unwrap();
}

#[test]
fn nested_block_on_is_an_error_not_a_deadlock() {
    let inner = block_on(async { block_on(async {}).map_err(|e| e.to_string()) }).unwrap();
    assert!(inner.unwrap_err().contains("already runs a loop"));
}

#[test]
fn tcp_echo_on_loopback() {
    let replies = block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let server = spawn(async move {
            for _ in 0..3 {
                let (mut stream, _) = listener.accept().await.unwrap();
                spawn(async move {
                    let mut buffer = [0; 64 * 1024];
                    loop {
                        let n = stream.read(&mut buffer).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        stream.write_all(&buffer[..n]).await.unwrap();
                    }
                });
            }
        });
        let clients: Vec<_> = (0..3u8)
            .map(|i| {
                spawn(async move {
                    let mut stream = TcpStream::connect(address).await.unwrap();
                    // More than a socket buffer holds, so reads and writes really wait.
                    let message = vec![b'a' + i; 1 << 20];
                    let mut echoed = Vec::new();
                    let mut buffer = [0; 64 * 1024];
                    let mut sent = 0;
                    while echoed.len() < message.len() {
                        if sent < message.len() {
                            sent += stream.write(&message[sent..(sent + 16 * 1024).min(message.len())]).await.unwrap();
                        }
                        let n = stream.read(&mut buffer).await.unwrap();
                        echoed.extend_from_slice(&buffer[..n]);
                    }
                    stream.shutdown_write().unwrap();
                    assert_eq!(stream.read(&mut buffer).await.unwrap(), 0);
                    echoed == message
                })
            })
            .collect();
        server.await.unwrap();
        let mut results = Vec::new();
        for client in clients {
            results.push(client.await.unwrap());
        }
        results
    })
    .unwrap();
    assert_eq!(replies, [true, true, true]);
}

#[test]
fn connecting_to_a_closed_port_fails_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed at once
    let error = block_on(async move { TcpStream::connect(port).await.err() }).unwrap();
    assert_eq!(error.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
}
