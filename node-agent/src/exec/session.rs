//! Console sessions: a login shell on a PTY that outlives its client. A client that drops can
//! attach again and first receives the last 64 KiB of output (what Coder's reconnecting PTY
//! does), then the live stream.
//!
//! A session id is a capability to read a terminal, so it is unguessable (128 bits from the
//! kernel's CSPRNG), and each session is bound to the project and box it was opened in: a
//! reattach names them too, and a session of another box is not found, exactly like an
//! unknown id, so an id learned elsewhere neither works nor confirms that it exists.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::exec::{self, ExecRequest, Stdio3, Target};
use crate::sys as oskit;

/// Output kept for a reattach.
pub const REPLAY_BYTES: usize = 64 * 1024;

/// What an attached client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Output(Vec<u8>),
    /// The shell exited with this code; nothing follows.
    Exit(i32),
}

struct Inner {
    ring: VecDeque<u8>,
    subscriber: Option<mpsc::Sender<Event>>,
    exit: Option<i32>,
    /// Since when no client has been attached (`None` while one is).
    detached_since: Option<Instant>,
}

/// One console: a process on a PTY, its replay buffer and its (at most one) attached client.
pub struct PtySession {
    pub id: String,
    /// The project and box it was opened in; a reattach must name the same.
    project: String,
    name: String,
    master: AsyncFd<OwnedFd>,
    inner: Mutex<Inner>,
    /// The host-side nsenter, to hang up the session's processes when it is reaped.
    nsenter_pid: u32,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PtySession {
    /// Starts `req` (an empty command is a login shell) on a new PTY of the given size. Must be
    /// called inside a tokio runtime.
    pub fn spawn(
        id: String,
        (project, name): (&str, &str),
        target: &Target,
        req: &ExecRequest,
        rows: u16,
        cols: u16,
    ) -> Result<Arc<PtySession>> {
        let (master, slave) = oskit::openpty(rows, cols)?;
        set_nonblocking(&master)?;
        let mut prepared = exec::command(target, req, Stdio3::Pty(slave))?;
        let child = tokio::process::Command::from(std::mem::replace(
            &mut prepared.cmd,
            std::process::Command::new("true"),
        ))
        .spawn()
        .map_err(|source| Error::Io {
            context: "start console".into(),
            source,
        })?;
        let nsenter_pid = child.id().unwrap_or(0);
        // Our copies of the slave are gone with the command, so the master reads EIO once the
        // shell and everything it started on the terminal have exited.
        drop(prepared);
        let session = Arc::new(PtySession {
            id,
            project: project.to_owned(),
            name: name.to_owned(),
            // SAFETY: the AsyncFd owns the fd, so it stays open and the same for its lifetime.
            master: unsafe { AsyncFd::register(master) }.map_err(|e| Error::Io {
                context: "register pty".into(),
                source: e.into_parts().1,
            })?,
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(REPLAY_BYTES),
                subscriber: None,
                exit: None,
                detached_since: Some(Instant::now()),
            }),
            nsenter_pid,
        });
        tokio::spawn(pump(session.clone(), child));
        Ok(session)
    }

    /// Attaches a client, replacing any previous one (whose stream ends). Returns the replay
    /// (the last 64 KiB) and the live events; nothing is lost or repeated between the two.
    pub fn attach(&self) -> (Vec<u8>, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(64);
        let mut inner = lock(&self.inner);
        let replay: Vec<u8> = inner.ring.iter().copied().collect();
        if let Some(code) = inner.exit {
            let _ = tx.try_send(Event::Exit(code));
        } else {
            inner.subscriber = Some(tx);
            inner.detached_since = None;
        }
        (replay, rx)
    }

    /// Detaches the current client; the shell keeps running.
    pub fn detach(&self) {
        let mut inner = lock(&self.inner);
        inner.subscriber = None;
        inner.detached_since.get_or_insert_with(Instant::now);
    }

    /// How long the session has had no client (a client whose stream is gone counts as none).
    fn idle_for(&self) -> Option<Duration> {
        let mut inner = lock(&self.inner);
        if inner.subscriber.as_ref().is_some_and(|tx| tx.is_closed()) {
            inner.subscriber = None;
            inner.detached_since = Some(Instant::now());
        }
        inner.detached_since.map(|t| t.elapsed())
    }

    /// The project and box the session was opened in.
    pub fn owner(&self) -> (&str, &str) {
        (&self.project, &self.name)
    }

    /// The exit code, once the shell has exited.
    pub fn exit_code(&self) -> Option<i32> {
        lock(&self.inner).exit
    }

    /// Types `data` into the terminal.
    pub async fn write(&self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await.map_err(|source| Error::Io {
                context: "pty".into(),
                source,
            })?;
            match guard.try_io(|fd| {
                // SAFETY: valid fd and buffer.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(source)) => {
                    return Err(Error::Io {
                        context: "write to pty".into(),
                        source,
                    });
                }
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Sends `sig` to the terminal's foreground process group, as the terminal driver does for
    /// ^C; for clients that send signals rather than control bytes.
    pub fn signal(&self, sig: i32) -> Result<()> {
        let pgrp = oskit::foreground_group(self.master.get_ref())?;
        oskit::kill(-pgrp, sig)
    }

    /// Resizes the terminal (the shell gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        oskit::set_winsize(self.master.get_ref(), rows, cols)
    }

    fn record(&self, data: &[u8]) -> Option<mpsc::Sender<Event>> {
        let mut inner = lock(&self.inner);
        let ring = &mut inner.ring;
        if data.len() >= REPLAY_BYTES {
            ring.clear();
            ring.extend(&data[data.len() - REPLAY_BYTES..]);
        } else {
            let over = (ring.len() + data.len()).saturating_sub(REPLAY_BYTES);
            ring.drain(..over);
            ring.extend(data);
        }
        inner.subscriber.clone()
    }
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    // SAFETY: valid fd.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(Error::Io {
                context: "pty".into(),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Moves output from the PTY to the ring and the attached client until the shell is gone.
async fn pump(s: Arc<PtySession>, mut child: tokio::process::Child) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(mut guard) = s.master.readable().await else {
            break;
        };
        let res = guard.try_io(|fd| {
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match res {
            Ok(Ok(0)) | Ok(Err(_)) => break, // EIO: every slave is closed
            Ok(Ok(n)) => {
                if let Some(tx) = s.record(&buf[..n]) {
                    let _ = tx.send(Event::Output(buf[..n].to_vec())).await;
                }
            }
            Err(_would_block) => continue,
        }
    }
    let code = match child.wait().await {
        Ok(st) => exec::exit_code(st),
        Err(_) => 255,
    };
    let tx = {
        let mut inner = lock(&s.inner);
        inner.exit = Some(code);
        inner.subscriber.take()
    };
    if let Some(tx) = tx {
        let _ = tx.send(Event::Exit(code)).await;
    }
}

/// How long a console may stay without a client before it is hung up.
pub const DEFAULT_IDLE_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Random bytes in a session id: 128 bits, so ids can be neither guessed nor enumerated.
pub const ID_RANDOM_BYTES: usize = 16;

/// A new session id: `pty-` and 32 hex digits from the kernel's CSPRNG.
fn new_id() -> Result<String> {
    let mut bytes = [0u8; ID_RANDOM_BYTES];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: the buffer is valid for `rest.len()` bytes. Flags 0: the urandom source,
        // which blocks only until the pool is first seeded at boot.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let source = std::io::Error::last_os_error();
            if source.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::Io {
                context: "random console session id".into(),
                source,
            });
        }
        filled += n as usize;
    }
    Ok(format!("pty-{}", hex::encode(bytes)))
}

/// The node's console sessions, by id.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<PtySession>>>,
    idle_limit: Duration,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions::with_idle_limit(DEFAULT_IDLE_LIMIT)
    }
}

impl Sessions {
    /// Sessions without a client for longer than `idle_limit` are hung up (SIGHUP to their
    /// processes) and forgotten, at the next open.
    pub fn with_idle_limit(idle_limit: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle_limit,
        }
    }

    /// Hangs up and forgets sessions idle past the limit, and exited ones nobody looked at.
    pub fn reap(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| {
            let idle = s.idle_for().is_some_and(|d| d > self.idle_limit);
            if idle && s.exit_code().is_none() {
                let _ = crate::exec::signal_exec(s.nsenter_pid, libc::SIGHUP);
            }
            !idle
        });
    }

    /// Starts a console in box `name` of `project` (whose PID 1 is `target`) and registers it
    /// under a new random id, bound to that box.
    pub fn open(
        &self,
        (project, name): (&str, &str),
        target: &Target,
        req: &ExecRequest,
        rows: u16,
        cols: u16,
    ) -> Result<Arc<PtySession>> {
        self.reap();
        let id = new_id()?;
        let s = PtySession::spawn(id.clone(), (project, name), target, req, rows, cols)?;
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, s.clone());
        Ok(s)
    }

    /// A session of box `name` of `project` to reattach to. A session of another box or
    /// project is not found, with the same error as an unknown id. Sessions whose shell has
    /// exited are dropped after this last look, so a late reattach still learns the exit code
    /// once.
    pub fn get(&self, id: &str, (project, name): (&str, &str)) -> Result<Arc<PtySession>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let s = map
            .get(id)
            .filter(|s| s.owner() == (project, name))
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("no console session {id:?} in this box")))?;
        if s.exit_code().is_some() {
            map.remove(id);
        }
        Ok(s)
    }
}
