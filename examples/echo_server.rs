// A TCP server on the book's own Rust executor (crate `event-loop`): one thread, many connections.
// The chapter "The same loop in Rust" walks through it. Run it with `cargo run --example echo_server`.

use event_loop::executor::{block_on, sleep, spawn};
use event_loop::net::{TcpListener, TcpStream};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

// ANCHOR: server
/// Sends every message back reversed, until the client hangs up.
async fn reverse(mut stream: TcpStream) -> io::Result<()> {
    let mut buffer = [0; 1024];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        let mut reply = buffer[..n].to_vec();
        reply.reverse();
        stream.write_all(&reply).await?;
    }
}

/// Accepts `clients` connections, each served by a task of its own.
async fn serve(listener: TcpListener, clients: usize) -> io::Result<()> {
    for _ in 0..clients {
        let (stream, _peer) = listener.accept().await?;
        spawn(reverse(stream));
    }
    Ok(())
}
// ANCHOR_END: server

// ANCHOR: client
/// Connects, waits `delay`, sends `word`, and returns the reply.
async fn client(address: SocketAddr, word: &'static str, delay: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    sleep(delay).await;
    stream.write_all(word.as_bytes()).await?;
    let mut buffer = [0; 1024];
    let n = stream.read(&mut buffer).await?;
    Ok(String::from_utf8_lossy(&buffer[..n]).into_owned())
}
// ANCHOR_END: client

// ANCHOR: main
fn main() -> io::Result<()> {
    let replies = block_on(async {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let address = listener.local_addr()?;
        let server = spawn(serve(listener, 3));
        // The last to connect speaks first: the server holds all three connections at once.
        let clients = [("stressed", 30), ("drawer", 20), ("live", 10)]
            .map(|(word, ms)| spawn(client(address, word, Duration::from_millis(ms))));
        let mut replies = Vec::new();
        for handle in clients {
            replies.push(handle.await.expect("client task")?);
        }
        server.await.expect("server task")?;
        Ok::<_, io::Error>(replies)
    })??;
    assert_eq!(replies, ["desserts", "reward", "evil"]);
    println!("{replies:?}");
    Ok(())
}
// ANCHOR_END: main
