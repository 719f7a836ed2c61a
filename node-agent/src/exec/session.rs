//! Console sessions: a login shell on a PTY that outlives its client. A client that drops can
//! attach again and first receives the last 64 KiB of output (what Coder's reconnecting PTY
//! does), then the live stream.
//!
//! How long a console outlives its client, and what happens to its output meanwhile, is the
//! rule of `exec::grace`: output is kept (the ring grows past 64 KiB to hold everything no
//! client has seen, up to `grace::DETACHED_BUFFER`, then the terminal is no longer read), and
//! after the console grace the terminal's processes get SIGHUP.
//!
//! A session id is a capability to read a terminal, so it is unguessable (128 bits from the
//! kernel's CSPRNG), and each session is bound to the project and box it was opened in: a
//! reattach names them too, and a session of another box is not found, exactly like an
//! unknown id, so an id learned elsewhere neither works nor confirms that it exists.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::error::{Error, Result};
use crate::exec::grace::{self, Attachment, Grace};
use crate::exec::{self, ExecRequest, Stdio3, Target};
use crate::sys;
use crate::sys::pty::Master;

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
    /// The last output: at least [`REPLAY_BYTES`], and everything no client has seen.
    ring: VecDeque<u8>,
    subscriber: Option<mpsc::Sender<Event>>,
    exit: Option<i32>,
    /// A client received the exit code: nothing more to keep the session for.
    exit_delivered: bool,
    attachment: Attachment,
    /// Output recorded while no client was attached (all of it is in the ring).
    unseen: usize,
    /// The grace ran out and the terminal was hung up.
    hung_up: bool,
}

/// One console: a process on a PTY, its replay buffer and its (at most one) attached client.
pub struct PtySession {
    pub id: String,
    /// The project and box it was opened in; a reattach must name the same.
    project: String,
    name: String,
    master: Master,
    inner: Mutex<Inner>,
    /// Wakes the pump when a client attaches or leaves.
    changed: Notify,
    /// How long it may stay without a client.
    grace: Duration,
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
        (rows, cols): (u16, u16),
        grace: Duration,
    ) -> Result<Arc<PtySession>> {
        let (master, slave) = sys::openpty(rows, cols)?;
        let master = Master::new(master)?;
        // Our copies of the slave are gone with the command after the spawn, so the master
        // reads EIO once the shell and everything it started on the terminal have exited.
        let child = exec::command(target, req, Stdio3::Pty(slave))?.spawn_async()?;
        let nsenter_pid = child.id().unwrap_or(0);
        let session = Arc::new(PtySession {
            id,
            project: project.to_owned(),
            name: name.to_owned(),
            master,
            inner: Mutex::new(Inner {
                ring: VecDeque::with_capacity(REPLAY_BYTES),
                subscriber: None,
                exit: None,
                exit_delivered: false,
                attachment: Attachment::detached(),
                unseen: 0,
                hung_up: false,
            }),
            changed: Notify::new(),
            grace,
            nsenter_pid,
        });
        tokio::spawn(pump(session.clone(), child));
        Ok(session)
    }

    /// Attaches a client, replacing any previous one (whose stream ends). Returns the replay
    /// (the last 64 KiB, and everything written while no client was attached) and the live
    /// events; nothing is lost or repeated between the two.
    pub fn attach(&self) -> (Vec<u8>, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(64);
        let mut inner = lock(&self.inner);
        let replay: Vec<u8> = inner.ring.iter().copied().collect();
        if let Some(code) = inner.exit {
            let _ = tx.try_send(Event::Exit(code));
            inner.exit_delivered = true;
        } else {
            inner.subscriber = Some(tx);
            inner.attachment.attach();
            inner.unseen = 0;
        }
        drop(inner);
        self.changed.notify_one();
        (replay, rx)
    }

    /// Detaches the current client; the shell keeps running for its grace.
    pub fn detach(&self) {
        let mut inner = lock(&self.inner);
        inner.subscriber = None;
        inner.attachment.detach();
        drop(inner);
        self.changed.notify_one();
    }

    /// Notices a client whose stream is gone; a newer client stays attached.
    pub fn detach_if_gone(&self) {
        let mut inner = lock(&self.inner);
        if inner.subscriber.as_ref().is_some_and(|tx| tx.is_closed()) {
            inner.subscriber = None;
            inner.attachment.detach();
            drop(inner);
            self.changed.notify_one();
        }
    }

    /// True once the session has been without a client for its grace (a client whose stream
    /// is gone counts as none).
    fn expired(&self) -> bool {
        let mut inner = lock(&self.inner);
        if inner.subscriber.as_ref().is_some_and(|tx| tx.is_closed()) {
            inner.subscriber = None;
            inner.attachment.detach();
        }
        inner.hung_up || inner.attachment.expired(self.grace)
    }

    /// Output buffered for a client that is not attached (at most `grace::DETACHED_BUFFER`).
    pub fn unseen_bytes(&self) -> usize {
        lock(&self.inner).unseen
    }

    /// Hangs the terminal up (SIGHUP to its processes) once, unless the shell has exited.
    fn hang_up(&self) {
        let mut inner = lock(&self.inner);
        if inner.hung_up || inner.exit.is_some() {
            return;
        }
        inner.hung_up = true;
        drop(inner);
        let _ = crate::exec::signal_exec(self.nsenter_pid, libc::SIGHUP);
        self.changed.notify_one();
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
    pub async fn write(&self, data: &[u8]) -> Result<()> {
        self.master
            .write_all(data)
            .await
            .map_err(|source| Error::Io {
                context: "write to pty".into(),
                source,
            })
    }

    /// Sends `sig` to the terminal's foreground process group, as the terminal driver does for
    /// ^C; for clients that send signals rather than control bytes.
    pub fn signal(&self, sig: i32) -> Result<()> {
        let pgrp = sys::foreground_group(self.master.get_ref())?;
        sys::kill(-pgrp, sig)
    }

    /// Resizes the terminal (the shell gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        sys::set_winsize(self.master.get_ref(), rows, cols)
    }

    /// Keeps `data` in the ring and returns the client to send it to, if one is attached. While
    /// none is, the ring keeps everything unseen (the pump stops reading at the bound).
    fn record(&self, data: &[u8]) -> Option<mpsc::Sender<Event>> {
        let mut inner = lock(&self.inner);
        if inner.subscriber.as_ref().is_some_and(|tx| tx.is_closed()) {
            inner.subscriber = None;
            inner.attachment.detach();
        }
        if !inner.attachment.is_attached() && !inner.hung_up {
            inner.unseen += data.len();
        }
        let keep = REPLAY_BYTES.max(inner.unseen);
        let ring = &mut inner.ring;
        ring.extend(data);
        let over = ring.len().saturating_sub(keep);
        ring.drain(..over);
        inner.subscriber.clone()
    }

    /// What the pump may do now: read (a client is attached, or the buffer has room, or the
    /// session is hung up and its output goes nowhere), and when the grace runs out.
    fn pump_state(
        &self,
    ) -> (
        bool,
        Option<tokio::time::Instant>,
        Option<mpsc::Sender<Event>>,
    ) {
        let inner = lock(&self.inner);
        let attached = inner.attachment.is_attached();
        let may_read = attached || inner.hung_up || grace::may_read(inner.unseen);
        let deadline = if inner.hung_up {
            None
        } else {
            inner
                .attachment
                .deadline(self.grace)
                .map(tokio::time::Instant::from_std)
        };
        (may_read, deadline, inner.subscriber.clone())
    }
}

/// Moves output from the PTY to the ring and the attached client until the shell is gone,
/// under the grace rule: without a client, output is kept up to the bound and then no longer
/// read; past the grace, the terminal is hung up.
async fn pump(s: Arc<PtySession>, mut child: tokio::process::Child) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (may_read, deadline, subscriber) = s.pump_state();
        let client_gone = async {
            match &subscriber {
                Some(tx) => tx.closed().await,
                None => std::future::pending().await,
            }
        };
        let expiry = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = s.master.read(&mut buf), if may_read => match n {
                Ok(0) | Err(_) => break, // EIO: every slave is closed
                Ok(n) => {
                    if let Some(tx) = s.record(&buf[..n]) {
                        let _ = tx.send(Event::Output(buf[..n].to_vec())).await;
                    }
                }
            },
            _ = client_gone => {
                let mut inner = lock(&s.inner);
                if inner.subscriber.as_ref().is_some_and(|tx| tx.is_closed()) {
                    inner.subscriber = None;
                    inner.attachment.detach();
                }
            }
            _ = expiry => {
                if s.expired() {
                    s.hang_up();
                }
            }
            _ = s.changed.notified() => {}
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
    if let Some(tx) = tx
        && tx.send(Event::Exit(code)).await.is_ok()
    {
        lock(&s.inner).exit_delivered = true;
    }
}

/// Random bytes in a session id: 128 bits, so ids can be neither guessed nor enumerated.
pub const ID_RANDOM_BYTES: usize = 16;

/// A new session id: `prefix`, `-` and 32 hex digits from the kernel's CSPRNG (`pty` for a
/// console; the gateway names plain exec streams `exec` the same way).
pub fn new_id(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; ID_RANDOM_BYTES];
    crate::sys::random::fill(&mut bytes).map_err(|source| Error::Io {
        context: "random session id".into(),
        source,
    })?;
    Ok(format!("{prefix}-{}", hex::encode(bytes)))
}

/// The node's console sessions, by id.
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<PtySession>>>,
    grace: Duration,
}

impl Default for Sessions {
    /// With the process's console grace (`Grace::current`).
    fn default() -> Sessions {
        Sessions::with_grace(Grace::current().console)
    }
}

impl Sessions {
    /// Sessions without a client for longer than `grace` are hung up (SIGHUP to their
    /// processes) when it runs out, and forgotten at the next open.
    pub fn with_grace(grace: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            grace,
        }
    }

    /// Hangs up and forgets sessions past their grace, and exited ones whose exit code a
    /// client has received.
    pub fn reap(&self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| {
            let expired = s.expired();
            if expired {
                s.hang_up();
            }
            !expired && !lock(&s.inner).exit_delivered
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
        let id = new_id("pty")?;
        let s = PtySession::spawn(
            id.clone(),
            (project, name),
            target,
            req,
            (rows, cols),
            self.grace,
        )?;
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
