//! One test per design principle of the pool.

use super::*;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::time::Duration;

fn pool(workers: usize, capacity: usize) -> Pool {
    Pool::new(Config { workers, capacity, ..Config::default() }).unwrap()
}

/// A gate a job waits at until the test opens it: makes "running" and "queued" states exact.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *lock(&self.0.0) = true;
        self.0.1.notify_all();
    }
    fn wait(&self) {
        let mut open = lock(&self.0.0);
        while !*open {
            open = self.0.1.wait(open).unwrap();
        }
    }
}

/// Waits (up to 10 s) until the pool's counters satisfy `done`.
fn until(pool: &Pool, done: impl Fn(&Stats) -> bool) {
    for _ in 0..10_000 {
        if done(&pool.stats()) {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
    panic!("never reached: {:?}", pool.stats());
}

/// A waker that counts its wake-ups.
struct Count(AtomicUsize);
impl std::task::Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A counting waker, and its count.
fn counting_waker() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count(AtomicUsize::new(0)));
    (count.clone(), Waker::from(count))
}

/// Occupies a worker with a job that waits at a gate; returns when the job is running.
fn hold_a_worker(pool: &Pool) -> (Gate, Job<()>) {
    let gate = Gate::default();
    let opened = gate.clone();
    let job = pool.try_submit(move |_| opened.wait()).unwrap();
    until(pool, |stats| stats.running >= 1);
    (gate, job)
}

#[test]
fn zero_workers_or_capacity_is_invalid_input() {
    for (workers, capacity) in [(0, 1), (1, 0)] {
        let error = Pool::new(Config { workers, capacity, ..Config::default() }).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}

#[test]
fn jobs_run_on_the_pools_named_threads_in_parallel() {
    let pool = pool(2, 8);
    let both = Arc::new(std::sync::Barrier::new(2)); // passes only if two jobs run at once
    let jobs: Vec<_> = (0..2)
        .map(|_| {
            let both = both.clone();
            pool.try_submit(move |_| {
                both.wait();
                thread::current().name().unwrap().to_owned()
            })
            .unwrap()
        })
        .collect();
    let mut names: Vec<String> = jobs.into_iter().map(|job| block_on(job).unwrap()).collect();
    names.sort();
    assert_eq!(names, ["offload-0", "offload-1"]);
    until(&pool, |stats| stats.completed == 2);
}

#[test]
fn a_job_wakes_its_waiter_once() {
    let pool = pool(1, 1);
    let gate = Gate::default();
    let opened = gate.clone();
    let mut job = pool.try_submit(move |_| {
        opened.wait();
        7
    })
    .unwrap();
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut job).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut job).poll(&mut cx).is_pending()); // same waker: kept, not doubled
    gate.open();
    until(&pool, |stats| stats.completed == 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(Pin::new(&mut job).poll(&mut cx), Poll::Ready(Ok(7)));
}

#[test]
fn the_queue_is_bounded_and_reserve_waits_for_room_in_order() {
    let pool = pool(1, 2);
    let gate = Gate::default();
    let hold = |gate: &Gate| {
        let gate = gate.clone();
        move |_: &Cancel| gate.wait()
    };
    let running = pool.try_submit(hold(&gate)).unwrap();
    until(&pool, |stats| stats.running == 1);
    let queued = [pool.try_submit(hold(&gate)).unwrap(), pool.try_submit(hold(&gate)).unwrap()];
    assert_eq!(pool.try_submit(|_| ()).err(), Some(SubmitError::Full));

    // Two callers wait for room; the first to ask gets the first room.
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut first, mut second) = (pool.reserve(), pool.reserve());
    assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut second).poll(&mut cx).is_pending());
    assert_eq!(pool.stats().waiting, 2);
    assert_eq!(pool.try_submit(|_| ()).err(), Some(SubmitError::Full)); // no barging past them

    gate.open(); // the running job ends, a queued one starts: one room
    for job in queued {
        block_on(job).unwrap();
    }
    block_on(running).unwrap();
    let Poll::Ready(Ok(slot)) = Pin::new(&mut first).poll(&mut cx) else { panic!("the first waiter gets the room") };
    let Poll::Ready(Ok(_other)) = Pin::new(&mut second).poll(&mut cx) else { panic!("then the second") };
    assert!(count.0.load(Ordering::SeqCst) >= 2);
    assert_eq!(block_on(slot.submit(|_| "in the reserved room")), Ok("in the reserved room"));
}

#[test]
fn a_woken_reserve_that_gives_up_passes_the_room_on() {
    let pool = pool(1, 1);
    let (gate, running) = hold_a_worker(&pool);
    let queued = pool.try_submit(|_| ()).unwrap();
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let (mut quitter, mut patient) = (pool.reserve(), pool.reserve());
    assert!(Pin::new(&mut quitter).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut patient).poll(&mut cx).is_pending());
    gate.open();
    block_on(running).unwrap();
    block_on(queued).unwrap();
    assert_eq!((pool.stats().waiting, count.0.load(Ordering::SeqCst)), (1, 1)); // the quitter was woken for the room...
    drop(quitter); // ...and gives up without taking it: the patient one is woken instead
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
    assert!(matches!(Pin::new(&mut patient).poll(&mut cx), Poll::Ready(Ok(_))));
}

#[test]
fn dropping_a_queued_job_removes_it_and_it_never_runs() {
    let pool = pool(1, 4);
    let (gate, running) = hold_a_worker(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let queued = pool.try_submit(move |_| flag.store(true, Ordering::SeqCst)).unwrap();
    assert_eq!(pool.stats().queued, 1);
    drop(queued);
    assert_eq!(pool.stats().queued, 0);
    gate.open();
    block_on(running).unwrap();
    pool.join();
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn cancelling_a_running_job_sets_its_flag() {
    let pool = pool(1, 1);
    let (started, is_running) = mpsc::channel();
    let job = pool.try_submit(move |cancel: &Cancel| -> Result<u32, Cancelled> {
        started.send(()).unwrap();
        loop {
            cancel.check()?;
            thread::sleep(Duration::from_millis(1));
        }
    })
    .unwrap();
    is_running.recv().unwrap();
    job.cancel();
    assert_eq!(block_on(job), Ok(Err(Cancelled)));
}

#[test]
fn a_panic_is_an_error_and_the_worker_survives() {
    let pool = pool(1, 2);
    let job = pool.try_submit(|_| -> u8 { panic!("kernel exploded at byte {}", 42) }).unwrap();
    assert_eq!(block_on(job), Err(JobError::Panicked("kernel exploded at byte 42".into())));
    assert_eq!(block_on(pool.run(|_| 1 + 1)), Ok(2));
    assert_eq!(pool.stats().workers, 1);
}

#[test]
fn shutdown_refuses_new_jobs_but_finishes_queued_ones() {
    let pool = pool(1, 100);
    let gate = Gate::default();
    let opened = gate.clone();
    let first = pool.try_submit(move |_| opened.wait()).unwrap();
    let rest: Vec<_> = (0..50).map(|i| pool.try_submit(move |_| i).unwrap()).collect();
    pool.shutdown();
    assert_eq!(pool.try_submit(|_| ()).err(), Some(SubmitError::ShutDown));
    assert_eq!(block_on(pool.run(|_| ())), Err(JobError::ShutDown));
    gate.open();
    pool.join();
    block_on(first).unwrap();
    let values: Vec<i32> = rest.into_iter().map(|job| block_on(job).unwrap()).collect();
    assert_eq!(values, (0..50).collect::<Vec<_>>());
    assert_eq!(pool.stats().completed, 51);
}

#[test]
fn shutdown_wakes_callers_waiting_for_room() {
    let pool = pool(1, 1);
    let (gate, running) = hold_a_worker(&pool);
    let queued = pool.try_submit(|_| ()).unwrap();
    let waiter = thread::spawn({
        let pool = pool.clone();
        move || block_on(pool.reserve()).err()
    });
    until(&pool, |stats| stats.waiting == 1);
    pool.shutdown();
    assert_eq!(waiter.join().unwrap(), Some(JobError::ShutDown));
    gate.open();
    assert_eq!((block_on(running), block_on(queued)), (Ok(()), Ok(())));
}

#[test]
fn cancel_queued_resolves_every_queued_job_as_cancelled() {
    let pool = pool(1, 10);
    let (gate, running) = hold_a_worker(&pool);
    let queued: Vec<_> = (0..5).map(|_| pool.try_submit(|_| ()).unwrap()).collect();
    assert_eq!(pool.cancel_queued(), 5);
    for job in queued {
        assert_eq!(block_on(job), Err(JobError::Cancelled));
    }
    gate.open();
    assert_eq!(block_on(running), Ok(()));
}

#[test]
fn dropping_the_last_handle_loses_no_queued_job() {
    let pool = pool(2, 64);
    let done = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = (0..64)
        .map(|_| {
            let done = done.clone();
            pool.try_submit(move |_| {
                thread::sleep(Duration::from_micros(200));
                done.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .collect();
    drop(pool); // shuts down without waiting: the workers still run every queued job
    for job in jobs {
        assert_eq!(block_on(job), Ok(()));
    }
    assert_eq!(done.load(Ordering::SeqCst), 64);
}

#[test]
fn a_job_holding_the_last_handle_does_not_deadlock() {
    let pool = pool(1, 1);
    let handle = pool.clone();
    let job = pool.try_submit(move |_| drop(handle)).unwrap();
    drop(pool);
    assert_eq!(block_on(job), Ok(()));
}

#[test]
fn nice_lowers_the_workers_priority() {
    let pool = Pool::new(Config { workers: 1, capacity: 1, nice: 7, ..Config::default() }).unwrap();
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority on the calling thread (the worker).
        let nice = block_on(pool.run(|_| unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t) })).unwrap();
        // SAFETY: the same, on the test's thread.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, (ours + 7).min(19));
    }
    let _ = pool;
}

#[test]
fn a_woken_waiter_keeps_its_room_against_newcomers() {
    let pool = pool(1, 1);
    let (gate, running) = hold_a_worker(&pool);
    let queued = pool.try_submit(|_| ()).unwrap();
    let (count, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut first = pool.reserve();
    assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
    gate.open();
    block_on(running).unwrap(); // the queued job starts: one room, promised to `first`
    until(&pool, |stats| stats.waiting == 0);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(pool.try_submit(|_| ()).err(), Some(SubmitError::Full)); // a newcomer must not take it
    let mut newcomer = pool.reserve();
    assert!(Pin::new(&mut newcomer).poll(&mut cx).is_pending());
    assert!(matches!(Pin::new(&mut first).poll(&mut cx), Poll::Ready(Ok(_))));
    block_on(queued).unwrap();
}

#[test]
fn a_watch_waits_for_the_workers_of_a_dropped_pool() {
    let pool = pool(2, 8);
    let watch = pool.watch();
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let done = done.clone();
        pool.try_submit(move |_| {
            thread::sleep(Duration::from_millis(2));
            done.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .detach();
    }
    drop(pool);
    watch.join();
    assert!(watch.is_finished());
    assert_eq!(done.load(Ordering::SeqCst), 8);
}

#[test]
fn a_cancelled_jobs_inputs_are_dropped_with_no_lock_held() {
    // The inputs' destructor reads the pool's counters, which take the pool's lock: it would
    // deadlock if the worker dropped them while holding it.
    struct ReadsThePool(Pool, mpsc::Sender<Stats>);
    impl Drop for ReadsThePool {
        fn drop(&mut self) {
            let _ = self.1.send(self.0.stats());
        }
    }
    let pool = pool(1, 1);
    let (sent, received) = mpsc::channel();
    let (started, is_running) = mpsc::channel();
    let inputs = ReadsThePool(pool.clone(), sent);
    let job = pool.try_submit(move |cancel: &Cancel| {
        let _inputs = &inputs;
        started.send(()).unwrap();
        while !cancel.is_cancelled() {
            thread::sleep(Duration::from_millis(1));
        }
        inputs
    })
    .unwrap();
    is_running.recv().unwrap();
    drop(job); // cancelled while running: the worker drops the returned inputs
    assert!(received.recv_timeout(Duration::from_secs(10)).is_ok());
}

#[test]
fn a_room_reserved_before_shutdown_still_runs_its_job() {
    let pool = pool(1, 2);
    let slot = block_on(pool.reserve()).unwrap();
    pool.shutdown();
    let job = slot.submit(|_| 42);
    pool.join();
    assert_eq!(block_on(job), Ok(42));
}

#[test]
fn an_unused_room_does_not_keep_a_shut_down_pool_alive() {
    let pool = pool(1, 2);
    let slot = block_on(pool.reserve()).unwrap();
    let watch = pool.watch();
    pool.shutdown();
    drop(slot);
    watch.join();
    assert!(watch.is_finished());
}
