//! The node agent of a box's node: the container-runtime path of 000. exec, console, ps, logs
//! and cp go there first; when no agent answers they fall back to Kubernetes exec (`exec.rs`).
//! Diffs and bases are the pool's own answers and need the agent.

use axum::http::StatusCode;
use forkr_agent_proto::auth::BearerToken;
use forkr_agent_proto::client::Agents;
use forkr_agent_proto::runtime::{self as rt, runtime_client::RuntimeClient};
use forkr_agent_proto::storage::storage_client::StorageClient;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::KubeBackend;
use crate::backend::{ExecIn, ExecOut, ExecStream, Upload};
use crate::error::{ApiError, ApiResult};
use crate::wire::ExecOutput;

pub(super) type Auth = InterceptedService<Channel, BearerToken>;

/// The agent's answer as an API error; the codes mean what they mean in local mode.
pub(super) fn status_error(s: Status) -> ApiError {
    let msg = s.message().to_owned();
    match s.code() {
        Code::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", msg),
        Code::AlreadyExists => ApiError::conflict("already_exists", msg),
        Code::InvalidArgument => ApiError::bad_request("invalid_argument", msg),
        Code::FailedPrecondition => ApiError::conflict("failed_precondition", msg),
        Code::PermissionDenied => ApiError::forbidden(msg),
        Code::Unavailable | Code::Unauthenticated | Code::DeadlineExceeded => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent_unavailable",
            format!("the node agent did not answer: {msg}"),
        ),
        _ => ApiError::internal(format!("node agent: {msg}")),
    }
}

/// An agent call that failed before the command started, when another path may try, or after.
#[derive(Debug)]
pub(super) enum AgentErr {
    Before(Status),
    During(Status),
}

impl AgentErr {
    /// Whether Kubernetes exec should try instead: the command never started, and the agent did
    /// not refuse the request itself (the fallback would refuse it too).
    pub(super) fn falls_back(&self) -> bool {
        matches!(self, AgentErr::Before(s) if s.code() != Code::InvalidArgument)
    }

    /// Ok when Kubernetes exec should try instead; the API error when it cannot, or when the
    /// request `needs_agent` (a `--user`, a console session).
    pub(super) fn or_fall_back(self, needs_agent: bool) -> ApiResult<()> {
        if self.falls_back() && !needs_agent {
            tracing::debug!(error = ?self, "node agent path failed; trying Kubernetes exec");
            return Ok(());
        }
        Err(self.into_api())
    }

    pub(super) fn into_api(self) -> ApiError {
        match self {
            AgentErr::Before(s) | AgentErr::During(s) => status_error(s),
        }
    }
}

/// A client-streaming agent call fed from an upload: `first`, then the body's chunks wrapped by
/// `data`, never more than `limit` bytes. An upload that failed on our side is that error, not
/// the agent's answer to a short stream.
pub(super) async fn stream_upload<M, T, F, Fut>(
    first: M,
    mut body: Upload,
    limit: u64,
    data: fn(Vec<u8>) -> M,
    call: F,
) -> ApiResult<T>
where
    M: Send + 'static,
    F: FnOnce(ReceiverStream<M>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
{
    let (tx, rx) = mpsc::channel::<M>(4);
    let _ = tx.send(first).await;
    let feeder = tokio::spawn(async move {
        let mut sent = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request("upload_failed", format!("receiving the upload: {e}"))
            })?;
            sent += chunk.len() as u64;
            if sent > limit {
                return Err(crate::upload::too_large(limit));
            }
            if tx.send(data(chunk.to_vec())).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    let r = call(ReceiverStream::new(rx)).await;
    match feeder.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(ApiError::internal(format!("upload task failed: {e}"))),
    }
    Ok(r.map_err(status_error)?.into_inner())
}

impl KubeBackend {
    pub(super) fn has_agents(&self) -> bool {
        self.agents.is_some()
    }

    async fn channel(&self, node: &str) -> Result<(Channel, BearerToken), Status> {
        let agents = self
            .agents
            .as_ref()
            .ok_or_else(|| Status::unavailable("forkr-api has no node agent configured"))?;
        let ch = agents
            .channel(node)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok((ch, agents.token()))
    }

    pub(super) async fn runtime(&self, node: &str) -> Result<RuntimeClient<Auth>, Status> {
        let (ch, token) = self.channel(node).await?;
        Ok(RuntimeClient::with_interceptor(ch, token)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20))
    }

    pub(super) async fn storage(&self, node: &str) -> ApiResult<StorageClient<Auth>> {
        let (ch, token) = self.channel(node).await.map_err(status_error)?;
        Ok(StorageClient::with_interceptor(ch, token)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(16 << 20))
    }

    /// Every node with a reachable agent.
    pub(super) async fn agent_nodes(&self) -> ApiResult<Vec<String>> {
        let agents = self.agents.as_ref().ok_or_else(|| {
            status_error(Status::unavailable(
                "forkr-api has no node agent configured",
            ))
        })?;
        let nodes = agents
            .nodes()
            .await
            .map_err(|e| status_error(Status::unavailable(e.to_string())))?;
        if nodes.is_empty() {
            return Err(status_error(Status::unavailable(
                "no node agent is running",
            )));
        }
        Ok(nodes)
    }

    /// A command to completion through the agent: stdin then EOF, output collected.
    pub(super) async fn agent_exec(
        &self,
        node: &str,
        start: rt::ExecStart,
        stdin: Vec<u8>,
    ) -> Result<ExecOutput, AgentErr> {
        let (tx, rx) = mpsc::channel(4);
        let mut msgs = vec![rt::exec_input::Msg::Start(start)];
        if !stdin.is_empty() {
            msgs.push(rt::exec_input::Msg::Stdin(stdin));
        }
        msgs.push(rt::exec_input::Msg::StdinEof(true));
        for m in msgs {
            // The receiver is alive: it is in this function.
            let _ = tx.send(rt::ExecInput { msg: Some(m) }).await;
        }
        drop(tx);
        let mut s = self
            .runtime(node)
            .await
            .map_err(AgentErr::Before)?
            .exec(ReceiverStream::new(rx))
            .await
            .map_err(AgentErr::Before)?
            .into_inner();
        // The agent's first message (`started`) says the command runs; an error before it is
        // one the fallback may retry.
        let first = s.message().await.map_err(AgentErr::Before)?;
        let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
        let mut next = first;
        while let Some(m) = next {
            match m.msg {
                Some(rt::exec_output::Msg::Stdout(b)) => out.extend(b),
                Some(rt::exec_output::Msg::Stderr(b)) => err.extend(b),
                Some(rt::exec_output::Msg::ExitCode(c)) => code = Some(c),
                _ => {}
            }
            next = s.message().await.map_err(AgentErr::During)?;
        }
        Ok(ExecOutput {
            exit_code: code.ok_or_else(|| {
                AgentErr::During(Status::unknown("the exec ended without an exit code"))
            })?,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    /// A streamed exec or console through the agent. The first answer is awaited here, so a box
    /// the agent cannot find is an error (and a fallback) rather than a dead stream.
    pub(super) async fn agent_stream(
        &self,
        node: &str,
        start: rt::ExecStart,
    ) -> Result<ExecStream, Status> {
        let (tx, rx) = mpsc::channel::<rt::ExecInput>(16);
        let _ = tx
            .send(rt::ExecInput {
                msg: Some(rt::exec_input::Msg::Start(start)),
            })
            .await;
        let mut out = self
            .runtime(node)
            .await?
            .exec(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let first = out
            .message()
            .await?
            .ok_or_else(|| Status::unknown("the exec ended before it started"))?;
        let (in_tx, mut in_rx) = mpsc::channel::<ExecIn>(16);
        let (out_tx, out_rx) = mpsc::channel::<ExecOut>(16);
        tokio::spawn(async move {
            while let Some(m) = in_rx.recv().await {
                let msg = match m {
                    ExecIn::Stdin(b) => rt::exec_input::Msg::Stdin(b),
                    ExecIn::Eof => rt::exec_input::Msg::StdinEof(true),
                    ExecIn::Resize { rows, cols } => rt::exec_input::Msg::Resize(rt::Resize {
                        rows: rows.into(),
                        cols: cols.into(),
                    }),
                    ExecIn::Signal(sig) => rt::exec_input::Msg::Signal(sig),
                };
                if tx.send(rt::ExecInput { msg: Some(msg) }).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut next = Some(first);
            loop {
                let m = match next.take() {
                    Some(m) => m,
                    None => {
                        let m = tokio::select! {
                            m = out.message() => m,
                            // Nobody reads any more (the client went away): dropping `out`
                            // cancels the call, so the agent's driver sees no client and its
                            // reconnect grace starts. Waiting for the next message instead
                            // would keep a silent command attached for ever.
                            _ = out_tx.closed() => return,
                        };
                        match m {
                            Ok(Some(m)) => m,
                            // The agent went away mid-stream: the command's fate is unknown.
                            Ok(None) | Err(_) => {
                                let _ = out_tx.send(ExecOut::Exit(255)).await;
                                return;
                            }
                        }
                    }
                };
                let sent = match m.msg {
                    Some(rt::exec_output::Msg::Started(id)) if !id.is_empty() => {
                        out_tx.send(ExecOut::Session(id)).await
                    }
                    Some(rt::exec_output::Msg::Stdout(b)) => out_tx.send(ExecOut::Stdout(b)).await,
                    Some(rt::exec_output::Msg::Stderr(b)) => out_tx.send(ExecOut::Stderr(b)).await,
                    Some(rt::exec_output::Msg::ExitCode(c)) => {
                        let _ = out_tx.send(ExecOut::Exit(c)).await;
                        return;
                    }
                    _ => Ok(()),
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        Ok(ExecStream {
            input: in_tx,
            output: out_rx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_codes_become_the_local_modes_errors() {
        let e = status_error(Status::not_found("no such file"));
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "not_found"));
        let e = status_error(Status::invalid_argument("bad path"));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = status_error(Status::failed_precondition("not running"));
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e = status_error(Status::unavailable("connection refused"));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable")
        );
        assert_eq!(
            status_error(Status::internal("x")).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn only_failures_before_the_command_starts_fall_back() {
        assert!(AgentErr::Before(Status::unavailable("down")).falls_back());
        assert!(AgentErr::Before(Status::not_found("not on this node")).falls_back());
        // The fallback would refuse a bad request too; a started command must not run twice.
        assert!(!AgentErr::Before(Status::invalid_argument("bad env")).falls_back());
        assert!(!AgentErr::During(Status::unavailable("reset")).falls_back());
    }
}
