//! The exec stream's frames (`.../exec/ws` and `.../console`), encoded and decoded in one place
//! so that 4kr, forkr-api and the e2e suite cannot drift apart.
//!
//! After the JSON [`ExecStart`](crate::wire::ExecStart), every WebSocket message is binary: one
//! kind byte, then a payload whose layout the kind fixes. Integers are big endian. Client and
//! server kinds share one numbering, so no byte means two things. docs/api.md describes the
//! format for other clients.
//!
//! Every stream opens with [`ServerFrame::Session`], and every output frame carries the offset of
//! its first byte in its stream, so that a later reattach or reconnect can say where it resumes
//! without a new protocol.

use crate::wire::ErrorBody;

/// Client → server: bytes for the command's stdin.
pub const KIND_STDIN: u8 = 0x00;
/// Server → client: stdout (or a PTY's output): offset, then bytes.
pub const KIND_STDOUT: u8 = 0x01;
/// Server → client: stderr: offset, then bytes.
pub const KIND_STDERR: u8 = 0x02;
/// Client → server: end of stdin; no payload.
pub const KIND_STDIN_EOF: u8 = 0x03;
/// Client → server: a PTY's new size: rows, then columns, both u16.
pub const KIND_RESIZE: u8 = 0x04;
/// Client → server: a signal number for the command, i32.
pub const KIND_SIGNAL: u8 = 0x05;
/// Server → client, first: the stream's session id, as UTF-8.
pub const KIND_SESSION: u8 = 0x10;
/// Server → client, last: the command's exit code, i32.
pub const KIND_EXIT: u8 = 0x11;
/// Server → client, last: the API's error body as JSON; the socket closes after it.
pub const KIND_ERROR: u8 = 0x12;

/// The longest session id a frame carries. Ids are short (`pty-` and 32 hex digits); the bound
/// keeps a hostile peer from handing a client an unbounded string to keep and send back.
pub const MAX_SESSION_ID: usize = 128;

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty frame: a frame starts with its kind byte")]
    Empty,
    #[error("frame kind {kind:#04x} is not one this side receives")]
    UnknownKind { kind: u8 },
    #[error("frame kind {kind:#04x} has a {len}-byte payload; it takes {expected}")]
    BadLength {
        kind: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("session id frame: {0}")]
    BadSession(&'static str),
    #[error("error frame: the payload is not the API's error body: {0}")]
    BadError(String),
    #[error("a text message where a binary frame belongs")]
    Text,
}

/// What a client sends after the start frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Stdin(Vec<u8>),
    /// End of stdin: the command reads EOF.
    StdinEof,
    /// A PTY's new size.
    Resize {
        rows: u16,
        cols: u16,
    },
    /// A signal for the command, by number (2: SIGINT, 15: SIGTERM).
    Signal(i32),
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// First on every stream: its session id (a console's is the one to reattach with).
    Session(String),
    /// Output; `offset` is the position of the first byte of `data` in the stdout stream.
    Stdout { offset: u64, data: Vec<u8> },
    /// Output; `offset` is the position of the first byte of `data` in the stderr stream.
    Stderr { offset: u64, data: Vec<u8> },
    /// The command ended with this code; nothing follows.
    Exit(i32),
    /// The stream failed or was refused; nothing follows.
    Error(ErrorBody),
}

impl ClientFrame {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ClientFrame::Stdin(data) => with_kind(KIND_STDIN, data),
            ClientFrame::StdinEof => vec![KIND_STDIN_EOF],
            ClientFrame::Resize { rows, cols } => {
                let mut out = vec![KIND_RESIZE];
                out.extend_from_slice(&rows.to_be_bytes());
                out.extend_from_slice(&cols.to_be_bytes());
                out
            }
            ClientFrame::Signal(sig) => with_kind(KIND_SIGNAL, &sig.to_be_bytes()),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<ClientFrame, FrameError> {
        let (&kind, payload) = bytes.split_first().ok_or(FrameError::Empty)?;
        match kind {
            KIND_STDIN => Ok(ClientFrame::Stdin(payload.to_vec())),
            KIND_STDIN_EOF => {
                exact::<0>(kind, payload)?;
                Ok(ClientFrame::StdinEof)
            }
            KIND_RESIZE => {
                let [r0, r1, c0, c1] = exact::<4>(kind, payload)?;
                Ok(ClientFrame::Resize {
                    rows: u16::from_be_bytes([r0, r1]),
                    cols: u16::from_be_bytes([c0, c1]),
                })
            }
            KIND_SIGNAL => Ok(ClientFrame::Signal(i32::from_be_bytes(exact::<4>(
                kind, payload,
            )?))),
            _ => Err(FrameError::UnknownKind { kind }),
        }
    }
}

impl ServerFrame {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ServerFrame::Session(id) => with_kind(KIND_SESSION, id.as_bytes()),
            ServerFrame::Stdout { offset, data } => output(KIND_STDOUT, *offset, data),
            ServerFrame::Stderr { offset, data } => output(KIND_STDERR, *offset, data),
            ServerFrame::Exit(code) => with_kind(KIND_EXIT, &code.to_be_bytes()),
            ServerFrame::Error(body) => {
                // Two strings cannot fail to serialize; the fallback keeps the frame well formed.
                let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
                with_kind(KIND_ERROR, &json)
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<ServerFrame, FrameError> {
        let (&kind, payload) = bytes.split_first().ok_or(FrameError::Empty)?;
        match kind {
            KIND_SESSION => {
                if payload.is_empty() || payload.len() > MAX_SESSION_ID {
                    return Err(FrameError::BadSession("the id takes 1 to 128 bytes"));
                }
                let id = std::str::from_utf8(payload)
                    .map_err(|_| FrameError::BadSession("the id is not UTF-8"))?;
                Ok(ServerFrame::Session(id.to_owned()))
            }
            KIND_STDOUT | KIND_STDERR => {
                let Some((head, data)) = payload.split_first_chunk::<8>() else {
                    return Err(FrameError::BadLength {
                        kind,
                        len: payload.len(),
                        expected: "8 offset bytes, then the data",
                    });
                };
                let offset = u64::from_be_bytes(*head);
                let data = data.to_vec();
                Ok(if kind == KIND_STDOUT {
                    ServerFrame::Stdout { offset, data }
                } else {
                    ServerFrame::Stderr { offset, data }
                })
            }
            KIND_EXIT => Ok(ServerFrame::Exit(i32::from_be_bytes(exact::<4>(
                kind, payload,
            )?))),
            KIND_ERROR => serde_json::from_slice(payload)
                .map(ServerFrame::Error)
                .map_err(|e| FrameError::BadError(e.to_string())),
            _ => Err(FrameError::UnknownKind { kind }),
        }
    }

    /// An error frame with the API's code and message.
    pub fn error(code: &str, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error(ErrorBody {
            error: code.to_owned(),
            message: message.into(),
        })
    }
}

/// Counts the bytes sent on each output stream, so every output frame carries its offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offsets {
    stdout: u64,
    stderr: u64,
}

impl Offsets {
    /// The stdout frame for `data`, numbered after everything before it.
    pub fn stdout(&mut self, data: Vec<u8>) -> ServerFrame {
        let offset = advance(&mut self.stdout, &data);
        ServerFrame::Stdout { offset, data }
    }

    /// The stderr frame for `data`, numbered after everything before it.
    pub fn stderr(&mut self, data: Vec<u8>) -> ServerFrame {
        let offset = advance(&mut self.stderr, &data);
        ServerFrame::Stderr { offset, data }
    }
}

fn advance(counter: &mut u64, data: &[u8]) -> u64 {
    let at = *counter;
    // usize fits in u64 on every target Rust supports; a stream never nears 2^64 bytes.
    *counter = at.saturating_add(data.len() as u64);
    at
}

fn with_kind(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + payload.len());
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

fn output(kind: u8, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + data.len());
    out.push(kind);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// A payload of exactly `N` bytes.
fn exact<const N: usize>(kind: u8, payload: &[u8]) -> Result<[u8; N], FrameError> {
    payload.try_into().map_err(|_| FrameError::BadLength {
        kind,
        len: payload.len(),
        expected: match N {
            0 => "no bytes",
            _ => "4 bytes",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client_frame() -> impl Strategy<Value = ClientFrame> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(ClientFrame::Stdin),
            Just(ClientFrame::StdinEof),
            (any::<u16>(), any::<u16>())
                .prop_map(|(rows, cols)| ClientFrame::Resize { rows, cols }),
            any::<i32>().prop_map(ClientFrame::Signal),
        ]
    }

    fn server_frame() -> impl Strategy<Value = ServerFrame> {
        let data = || proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            "[a-z0-9-]{1,128}".prop_map(ServerFrame::Session),
            (any::<u64>(), data()).prop_map(|(offset, data)| ServerFrame::Stdout { offset, data }),
            (any::<u64>(), data()).prop_map(|(offset, data)| ServerFrame::Stderr { offset, data }),
            any::<i32>().prop_map(ServerFrame::Exit),
            (".*", ".*").prop_map(|(c, m)| ServerFrame::error(&c, m)),
        ]
    }

    proptest! {
        #[test]
        fn client_frames_round_trip(f in client_frame()) {
            prop_assert_eq!(ClientFrame::decode(&f.encode()), Ok(f));
        }

        #[test]
        fn server_frames_round_trip(f in server_frame()) {
            prop_assert_eq!(ServerFrame::decode(&f.encode()), Ok(f));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ClientFrame::decode(&bytes);
            let _ = ServerFrame::decode(&bytes);
        }

        #[test]
        fn offsets_follow_the_bytes_sent(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 0..16)) {
            let mut offsets = Offsets::default();
            let mut expected = 0u64;
            for chunk in chunks {
                let len = chunk.len() as u64;
                match offsets.stdout(chunk) {
                    ServerFrame::Stdout { offset, .. } => prop_assert_eq!(offset, expected),
                    other => prop_assert!(false, "not stdout: {:?}", other),
                }
                expected += len;
            }
            prop_assert_eq!(offsets.stderr(vec![1]), ServerFrame::Stderr { offset: 0, data: vec![1] });
        }
    }

    /// The byte layout docs/api.md documents, pinned.
    #[test]
    fn the_documented_layouts() {
        assert_eq!(ClientFrame::Stdin(b"hi".to_vec()).encode(), b"\x00hi");
        assert_eq!(ClientFrame::StdinEof.encode(), [0x03]);
        assert_eq!(
            ClientFrame::Resize { rows: 24, cols: 80 }.encode(),
            [0x04, 0, 24, 0, 80]
        );
        assert_eq!(ClientFrame::Signal(2).encode(), [0x05, 0, 0, 0, 2]);
        assert_eq!(ServerFrame::Session("pty-1".into()).encode(), b"\x10pty-1");
        assert_eq!(
            ServerFrame::Stdout {
                offset: 258,
                data: b"ok".to_vec()
            }
            .encode(),
            b"\x01\0\0\0\0\0\0\x01\x02ok"
        );
        assert_eq!(
            ServerFrame::Stderr {
                offset: 0,
                data: vec![]
            }
            .encode(),
            [0x02, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            ServerFrame::Exit(-1).encode(),
            [0x11, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            ServerFrame::error("bad", "no").encode(),
            b"\x12{\"error\":\"bad\",\"message\":\"no\"}"
        );
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        assert_eq!(ClientFrame::decode(&[]), Err(FrameError::Empty));
        // The old end-of-stdin byte is stdout now: a client frame cannot carry it.
        assert_eq!(
            ClientFrame::decode(&[0x01]),
            Err(FrameError::UnknownKind { kind: 0x01 })
        );
        assert!(matches!(
            ClientFrame::decode(&[KIND_STDIN_EOF, 0]),
            Err(FrameError::BadLength { len: 1, .. })
        ));
        assert!(matches!(
            ClientFrame::decode(&[KIND_RESIZE, 0, 24]),
            Err(FrameError::BadLength { len: 2, .. })
        ));
        assert!(matches!(
            ServerFrame::decode(&[KIND_STDOUT, 0, 0]),
            Err(FrameError::BadLength { len: 2, .. })
        ));
        assert!(matches!(
            ServerFrame::decode(&[KIND_SESSION]),
            Err(FrameError::BadSession(_))
        ));
        assert!(matches!(
            ServerFrame::decode(&[KIND_SESSION, 0xff]),
            Err(FrameError::BadSession(_))
        ));
        assert!(matches!(
            ServerFrame::decode(b"\x12not json"),
            Err(FrameError::BadError(_))
        ));
        assert_eq!(
            ServerFrame::decode(&[KIND_STDIN]),
            Err(FrameError::UnknownKind { kind: KIND_STDIN })
        );
    }
}
