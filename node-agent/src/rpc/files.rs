//! File transfer streams: one regular file per call, header first.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

use super::proto::{self, get_file_chunk, put_file_chunk};
use super::{RuntimeService, Stream, blocking, box_ref};
use crate::exec::files::BoxFiles;

const CHUNK: usize = 256 * 1024;

pub(super) async fn put(
    svc: &RuntimeService,
    mut input: Streaming<proto::PutFileChunk>,
) -> Result<Response<proto::PutFileResponse>, Status> {
    let Some(put_file_chunk::Msg::Header(h)) = input.message().await?.and_then(|m| m.msg) else {
        return Err(Status::invalid_argument(
            "the first message must be the header",
        ));
    };
    let (p, n) = box_ref(h.r#box)?;
    let owner = match (h.uid, h.gid) {
        (Some(u), Some(g)) => Some((u, g)),
        (None, None) => None,
        _ => return Err(Status::invalid_argument("uid and gid go together")),
    };
    let pool = svc.pool.clone();
    let path = h.path.clone();
    let shared = h.shared_writes;
    let mut pending = blocking(move || {
        BoxFiles::for_box(&pool, &p, &n)?
            .allow_shared_writes(shared)
            .put(&path, h.mode, owner)
    })
    .await?;
    // Data is written on the blocking pool, chunk by chunk, as it arrives.
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            pending.write(&chunk)?;
        }
        Ok::<_, crate::Error>(pending)
    });
    while let Some(m) = input.message().await? {
        match m.msg {
            Some(put_file_chunk::Msg::Data(d)) => {
                if tx.send(d).await.is_err() {
                    break;
                }
            }
            _ => return Err(Status::invalid_argument("only data may follow the header")),
        }
    }
    drop(tx);
    let pending = writer
        .await
        .map_err(|e| Status::internal(format!("agent task failed: {e}")))?
        .map_err(super::st)?;
    let bytes = blocking(move || pending.commit()).await?;
    Ok(Response::new(proto::PutFileResponse { bytes }))
}

pub(super) async fn get(
    svc: &RuntimeService,
    req: proto::GetFileRequest,
) -> Result<Response<Stream<proto::GetFileChunk>>, Status> {
    let (p, n) = box_ref(req.r#box)?;
    let pool = svc.pool.clone();
    let path = req.path;
    let file = blocking(move || BoxFiles::for_box(&pool, &p, &n)?.get(&path)).await?;
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let info = proto::FileInfo {
            mode: file.mode,
            uid: file.uid,
            gid: file.gid,
            size: file.size,
        };
        let chunk = |msg| Ok(proto::GetFileChunk { msg: Some(msg) });
        if tx
            .blocking_send(chunk(get_file_chunk::Msg::Info(info)))
            .is_err()
        {
            return;
        }
        let mut f = file.file;
        let mut buf = vec![0u8; CHUNK];
        loop {
            match f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(chunk(get_file_chunk::Msg::Data(buf[..n].to_vec())))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!("read: {e}"))));
                    return;
                }
            }
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}
