//! `ProxyJump`: reaching a host through a bastion.
//!
//! The bastion's session opens a `direct-tcpip` channel to the target; the
//! target's own SSH session (its own host key check and authentication,
//! end to end, as with `ssh -J`) runs over one end of a local socket pair
//! while a thread copies bytes between the other end and the channel.
//! libssh2 wants a file descriptor for its transport, and a channel is not
//! one: the socket pair is the adapter.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ssh2::{Channel, Session};

use super::channel::{self, Step};

/// A running tunnel; dropping it stops the copying thread.
pub struct Tunnel {
    stop: Arc<AtomicBool>,
    pump: Option<JoinHandle<()>>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
    }
}

/// Opens a channel from `bastion` (a non-blocking session) to
/// `host:port`; returns the local end to hand to the target's session.
pub fn open(
    bastion: &Session,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<(UnixStream, Tunnel), String> {
    let what = format!("the bastion's tunnel to {host}:{port}");
    let channel = match channel::retry(deadline, &what, || {
        bastion.channel_direct_tcpip(host, port, None)
    }) {
        Ok(c) => c,
        Err(Step::Deadline) => return Err(format!("{what} did not open in time")),
        Err(Step::Failed(m) | Step::NotStarted(m)) => {
            return Err(format!("{m} (is AllowTcpForwarding on there?)"));
        }
    };
    let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socket pair: {e}"))?;
    theirs
        .set_nonblocking(true)
        .map_err(|e| format!("socket pair: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let pump = std::thread::Builder::new()
        .name(format!("ssh-jump-{host}"))
        .spawn(move || pump(channel, theirs, &flag))
        .map_err(|e| format!("tunnel thread: {e}"))?;
    Ok((
        ours,
        Tunnel {
            stop,
            pump: Some(pump),
        },
    ))
}

/// Bytes waiting to be written to one side.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    at: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// Writes what it can; `Ok(true)` if bytes moved.
    fn flush_to(&mut self, w: &mut impl Write) -> std::io::Result<bool> {
        if self.is_empty() {
            return Ok(false);
        }
        match w.write(&self.buf[self.at..]) {
            Ok(n) => {
                self.at += n;
                Ok(n > 0)
            }
            Err(e) if would_block(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads a chunk when empty; `Ok(None)` at end of stream.
    fn fill_from(&mut self, r: &mut impl Read, chunk: &mut [u8]) -> std::io::Result<Option<bool>> {
        if !self.is_empty() {
            return Ok(Some(false));
        }
        match r.read(chunk) {
            Ok(0) => Ok(None),
            Ok(n) => {
                self.buf.clear();
                self.buf.extend_from_slice(&chunk[..n]);
                self.at = 0;
                Ok(Some(true))
            }
            Err(e) if would_block(&e) => Ok(Some(false)),
            Err(e) => Err(e),
        }
    }
}

fn would_block(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
}

/// Copies both ways until either side ends or the tunnel is dropped. One
/// thread for both directions: the bastion's session is non-blocking and
/// serves no one else.
fn pump(mut channel: Channel, mut local: UnixStream, stop: &AtomicBool) {
    let (mut up, mut down) = (Pending::default(), Pending::default());
    let mut chunk = vec![0u8; 32 * 1024];
    let mut idle = Duration::from_micros(100);
    while !stop.load(Ordering::Relaxed) {
        let step = (|| -> std::io::Result<Option<bool>> {
            let Some(a) = up.fill_from(&mut local, &mut chunk)? else {
                return Ok(None);
            };
            let b = up.flush_to(&mut channel)?;
            // A channel read of 0 bytes is its end only with EOF set.
            let c = match down.fill_from(&mut channel, &mut chunk)? {
                Some(moved) => moved,
                None if channel.eof() => return Ok(None),
                None => false,
            };
            let d = down.flush_to(&mut local)?;
            Ok(Some(a || b || c || d))
        })();
        match step {
            Ok(Some(true)) => idle = Duration::from_micros(100),
            Ok(Some(false)) => {
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_millis(5));
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = channel.send_eof();
    let _ = channel.close();
}
