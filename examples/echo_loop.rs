// The loop of the chapter "How an event loop works", in Rust, on the book's `selectors` crate:
// one thread serves several TCP echo clients at once. Run it with `cargo run --example echo_loop`.
//
// There is no executor for futures on this loop yet, so each paused piece of work is written out
// as a state machine (the chapter "Generators" showed that a generator is one); the chapter "The
// same loop in Rust" replaces them with futures.

use selectors::{Events, Selector};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Barrier};
use std::thread;

// ANCHOR: tasks
/// A paused piece of work: the twin of a coroutine suspended on `Wait`.
enum Task {
    /// Accepting `left` more clients.
    Accept { listener: TcpListener, left: usize },
    /// Waiting for a client to say something.
    Read { stream: TcpStream },
    /// Sending `reply[sent..]` back.
    Write { stream: TcpStream, reply: Vec<u8>, sent: usize },
}

impl Task {
    /// The request: which descriptor, ready for what, lets this task go on.
    fn request(&self) -> (RawFd, Events) {
        match self {
            Task::Accept { listener, .. } => (listener.as_raw_fd(), Events::READ),
            Task::Read { stream } => (stream.as_raw_fd(), Events::READ),
            Task::Write { stream, .. } => (stream.as_raw_fd(), Events::WRITE),
        }
    }

    /// The work to do now that the descriptor is ready: returns what this task waits for next
    /// (`None` when it is finished) and a new task, if it started one.
    fn resume(self) -> io::Result<(Option<Task>, Option<Task>)> {
        Ok(match self {
            Task::Accept { listener, left } => {
                let (stream, _address) = listener.accept()?;
                stream.set_nonblocking(true)?;
                let more = (left > 1).then_some(Task::Accept { listener, left: left - 1 });
                (more, Some(Task::Read { stream }))
            }
            Task::Read { mut stream } => {
                let mut buffer = [0; 1024];
                match stream.read(&mut buffer) {
                    Ok(0) => (None, None), // the client hung up; dropping the stream closes it
                    Ok(n) => (Some(Task::Write { stream, reply: buffer[..n].to_ascii_uppercase(), sent: 0 }), None),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => (Some(Task::Read { stream }), None),
                    Err(e) => return Err(e),
                }
            }
            Task::Write { mut stream, reply, sent } => {
                let sent = sent + stream.write(&reply[sent..])?;
                if sent == reply.len() {
                    (Some(Task::Read { stream }), None)
                } else {
                    (Some(Task::Write { stream, reply, sent }), None)
                }
            }
        })
    }
}
// ANCHOR_END: tasks

// ANCHOR: loop
/// Runs `first` and every task it starts until none is left; returns how many tasks ran.
fn run(first: Task) -> io::Result<usize> {
    let mut selector: Selector<Task> = Selector::new()?;
    let file = |selector: &mut Selector<Task>, task: Task| -> io::Result<()> {
        let (fd, events) = task.request();
        selector.register(fd, events, task).map(drop).map_err(io::Error::other)
    };
    file(&mut selector, first)?;
    let mut started = 1;
    while !selector.is_empty() {
        // Monitor: sleep until some requests can be served.
        let ready: Vec<RawFd> = selector.select(None).map_err(io::Error::other)?.into_iter().map(|(key, _)| key.fd).collect();
        for fd in ready {
            // Execute: take the task out of the selector, run it to its next request, file that.
            let task = selector.unregister(fd).map_err(io::Error::other)?.data;
            let (next, new) = task.resume()?;
            started += new.is_some() as usize;
            for task in next.into_iter().chain(new) {
                file(&mut selector, task)?;
            }
        }
    }
    Ok(started)
}
// ANCHOR_END: loop

// ANCHOR: clients
/// A plain blocking client on its own thread: connect, say hello, wait for the others, say more.
fn client(port: u16, name: &'static str, together: Arc<Barrier>) -> io::Result<Vec<String>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let mut replies = Vec::new();
    for (i, word) in ["hello", "from", name].into_iter().enumerate() {
        if i == 1 {
            together.wait(); // every client is connected at this point
        }
        stream.write_all(word.as_bytes())?;
        let mut buffer = [0; 1024];
        let n = stream.read(&mut buffer)?;
        replies.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    Ok(replies)
}

fn serve_clients(names: &[&'static str]) -> io::Result<(usize, Vec<Vec<String>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let together = Arc::new(Barrier::new(names.len()));
    let clients: Vec<_> = names
        .iter()
        .map(|&name| {
            let together = together.clone();
            thread::spawn(move || client(port, name, together))
        })
        .collect();
    let tasks = run(Task::Accept { listener, left: names.len() })?;
    let replies = clients.into_iter().map(|c| c.join().expect("client thread")).collect::<io::Result<_>>()?;
    Ok((tasks, replies))
}
// ANCHOR_END: clients

fn main() -> io::Result<()> {
    let names = ["ada", "bob", "cy"];
    let (tasks, replies) = serve_clients(&names)?;
    for (name, got) in names.iter().zip(replies) {
        assert_eq!(got, ["HELLO", "FROM", &name.to_uppercase()]);
        println!("{name} {got:?}");
    }
    println!("{tasks} tasks on one thread");
    Ok(())
}
