//! Non-blocking TCP for the executor: each operation tries the socket and, if it would block,
//! waits for the loop to report the descriptor ready, then tries again.

use crate::executor::{Event, current};
use std::future::Future;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Completes the first time it is polled after the loop reported `fd` ready (or after any other
/// wake: callers always retry their operation, so a spurious wake-up costs one `WouldBlock`).
struct Readiness {
    fd: RawFd,
    write: bool,
    registered: bool,
}

impl Future for Readiness {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.registered {
            return Poll::Ready(Ok(()));
        }
        let runtime = current();
        let mut core = runtime.core.borrow_mut();
        let wake = Event::Wake(cx.waker().clone());
        if self.write { core.add_writer(self.fd, wake) } else { core.add_reader(self.fd, wake) }?;
        self.registered = true;
        Poll::Pending
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        // Dropped before the descriptor was ready (the operation was cancelled): stop watching.
        if let (true, Some(runtime)) = (self.registered, crate::executor::try_current()) {
            let mut core = runtime.core.borrow_mut();
            let _ = if self.write { core.remove_writer(self.fd) } else { core.remove_reader(self.fd) };
        }
    }
}

/// Retries `operation` until it does not block, waiting for readiness in between.
async fn retry<T>(fd: RawFd, write: bool, mut operation: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match operation() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => Readiness { fd, write, registered: false }.await?,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A listening socket whose `accept` is a future.
pub struct TcpListener {
    inner: mio::net::TcpListener,
}

impl TcpListener {
    pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
        Ok(TcpListener { inner: mio::net::TcpListener::bind(address)? })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (inner, peer) = retry(self.inner.as_raw_fd(), false, || self.inner.accept()).await?;
        Ok((TcpStream { inner }, peer))
    }
}

/// A connected socket whose reads and writes are futures.
pub struct TcpStream {
    inner: mio::net::TcpStream,
}

impl TcpStream {
    /// Connects without blocking: the connection is established when the socket turns writable.
    pub async fn connect(address: SocketAddr) -> io::Result<TcpStream> {
        let inner = mio::net::TcpStream::connect(address)?;
        Readiness { fd: inner.as_raw_fd(), write: true, registered: false }.await?;
        if let Some(error) = inner.take_error()? {
            return Err(error);
        }
        inner.peer_addr()?; // fails with ENOTCONN if the connection did not happen
        Ok(TcpStream { inner })
    }

    /// Reads what has arrived, waiting until something has; 0 means the peer closed its side.
    pub async fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let fd = self.inner.as_raw_fd();
        retry(fd, false, || self.inner.read(buffer)).await
    }

    /// Writes what fits in the send buffer, waiting until something fits.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let fd = self.inner.as_raw_fd();
        retry(fd, true, || self.inner.write(data)).await
    }

    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let written = self.write(data).await?;
            data = &data[written..];
        }
        Ok(())
    }

    /// Closes the writing half: the peer reads end of file.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.inner.shutdown(std::net::Shutdown::Write)
    }
}
