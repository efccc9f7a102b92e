//! The load generator of `benchmarks/echo.py`, a separate process so that the server being measured
//! has its own interpreter and its own CPU account.
//!
//! `echo-client ADDR CONNECTIONS SIZE SECONDS` opens CONNECTIONS connections to ADDR, each on its own
//! thread, and on each one sends SIZE bytes and reads SIZE bytes back, again and again, for SECONDS.
//! Every echoed byte is compared with what was sent (each request's bytes differ: a counter is
//! stamped into them). Prints `requests bytes` (echoed in total) on one line; exits 1 on a mismatch.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: echo-client ADDR CONNECTIONS SIZE SECONDS");
        std::process::exit(2);
    }
    let address = args[1].clone();
    let connections: usize = args[2].parse().expect("CONNECTIONS is a number");
    let size: usize = args[3].parse().expect("SIZE is a number");
    let seconds: f64 = args[4].parse().expect("SECONDS is a number");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);

    let threads: Vec<_> = (0..connections)
        .map(|connection| {
            let address = address.clone();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut stream = TcpStream::connect(&address).map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut request: Vec<u8> = (0..size).map(|i| (i * 31 + connection) as u8).collect();
                let mut answer = vec![0u8; size];
                let mut requests = 0u64;
                while Instant::now() < deadline {
                    request[..8.min(size)].copy_from_slice(&requests.to_le_bytes()[..8.min(size)]);
                    stream.write_all(&request).map_err(|e| e.to_string())?;
                    stream.read_exact(&mut answer).map_err(|e| e.to_string())?;
                    if answer != request {
                        return Err(format!("connection {connection}: request {requests} came back different"));
                    }
                    requests += 1;
                }
                Ok(requests)
            })
        })
        .collect();

    let mut total = 0u64;
    for thread in threads {
        match thread.join().expect("a client thread panicked") {
            Ok(requests) => total += requests,
            Err(problem) => {
                eprintln!("echo-client: {problem}");
                std::process::exit(1);
            }
        }
    }
    println!("{total} {}", total * size as u64);
}
