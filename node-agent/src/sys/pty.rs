//! The master side of a console's pseudo-terminal, as async reads and writes: the raw
//! `read`/`write`/`fcntl` calls of the exec engine live here, behind the `sys` seam.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::error::{Error, Result};

/// A PTY master registered with the reactor, non-blocking.
pub struct Master {
    fd: AsyncFd<OwnedFd>,
}

impl Master {
    /// Takes a master from `sys::openpty`.
    pub fn new(fd: OwnedFd) -> Result<Master> {
        // SAFETY: plain fcntl on an open fd.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0
            || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
        {
            return Err(Error::Io {
                context: "pty".into(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the AsyncFd owns the fd, so it stays open and the same for its lifetime.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| Error::Io {
            context: "register pty".into(),
            source: e.into_parts().1,
        })?;
        Ok(Master { fd })
    }

    /// The descriptor, for ioctls (size, foreground group).
    pub fn get_ref(&self) -> &OwnedFd {
        self.fd.get_ref()
    }

    /// Reads what the terminal's programs wrote; 0 or an error (EIO) once every slave is
    /// closed.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| {
                // SAFETY: valid fd and buffer.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(res) => return res,
                Err(_would_block) => continue,
            }
        }
    }

    /// Types all of `data` into the terminal.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| {
                // SAFETY: valid fd and buffer.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}
