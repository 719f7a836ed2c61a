//! Streamed uploads: the request body read as it arrives, with a size cap.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::backend::Upload;

/// A blocking reader over an upload stream that fails once more than `limit` bytes arrive, so
/// a huge body is cut off while it streams rather than after it filled a disk.
pub struct LimitedReader {
    inner: SyncIoBridge<StreamReader<Upload, axum::body::Bytes>>,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
}

impl LimitedReader {
    /// Must be read from a blocking thread (it waits on the async stream).
    pub fn new(body: Upload, limit: u64) -> LimitedReader {
        LimitedReader {
            inner: SyncIoBridge::new(StreamReader::new(body)),
            remaining: limit,
            exceeded: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set once the cap was passed: the caller reports 413 rather than the reader's error.
    pub fn exceeded_flag(&self) -> Arc<AtomicBool> {
        self.exceeded.clone()
    }
}

impl Read for LimitedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Read one byte past the limit so that "exactly at the limit" still succeeds.
        let cap = usize::try_from(self.remaining.saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..cap])?;
        if n as u64 > self.remaining {
            self.exceeded.store(true, Ordering::SeqCst);
            return Err(std::io::Error::other("upload exceeds the size limit"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// 413 `upload_too_large`: the body went over `limit` bytes.
pub fn too_large(limit: u64) -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("upload is larger than {limit} bytes"),
    )
}
