//! The typed client of the REST API: what 4kr uses. Every method sends and returns the types of
//! [`crate::wire`], so a change on the server is a compile error here; the exec socket sends and
//! receives the frames of [`crate::frame`].

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{ClientFrame, FrameError, ServerFrame};
use crate::wire::*;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body: its message is shown to users as it is.
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered something that is not the API.
    #[error("unexpected answer from the server ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
    /// An exec or console WebSocket broke.
    #[error("the exec stream broke: {0}")]
    Stream(#[source] tokio_tungstenite::tungstenite::Error),
    /// The server sent bytes that are not an exec frame.
    #[error("bad frame from the server: {0}")]
    Frame(#[from] FrameError),
}

impl ClientError {
    /// The API's error code, when the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// A connection to one forkr-api.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Path segments are validated names, but encode them anyway: a client must never let a value
/// change the shape of the URL.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// `insecure` accepts any TLS certificate (FORKR_INSECURE, for local and test deployments).
    pub fn new(base_url: &str, token: Option<String>, insecure: bool) -> ClientResult<Client> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .user_agent(concat!("4kr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Transport {
                url: base_url.to_owned(),
                source,
            })?;
        Ok(Client {
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<T> {
        let bytes = self.send_raw(method, path, body).await?;
        let text = if bytes.is_empty() {
            "null".as_bytes()
        } else {
            &bytes[..]
        };
        serde_json::from_slice(text).map_err(|e| ClientError::Unexpected {
            status: 200,
            detail: e.to_string(),
        })
    }

    async fn send_raw<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |source| ClientError::Transport {
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?.to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, &bytes))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> ClientResult<T> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> ClientResult<()> {
        self.send_raw::<()>(Method::DELETE, path, None)
            .await
            .map(drop)
    }

    /// Sends a streamed body (a tarball, a file) and reads the JSON answer.
    async fn upload<T: DeserializeOwned>(
        &self,
        method: Method,
        url: String,
        content_type: &str,
        body: reqwest::Body,
    ) -> ClientResult<T> {
        let mut req = self
            .http
            .request(method, &url)
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let transport = |source| ClientError::Transport {
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            status: status.as_u16(),
            detail: e.to_string(),
        })
    }

    fn project(project: &str) -> String {
        format!("/v1/projects/{}", seg(project))
    }

    pub async fn health(&self) -> ClientResult<Health> {
        self.get("/healthz").await
    }

    pub async fn list_users(&self, project: &str) -> ClientResult<Vec<UserView>> {
        self.get(&format!("{}/users", Self::project(project))).await
    }

    pub async fn create_user(&self, project: &str, req: &CreateUser) -> ClientResult<UserView> {
        self.send(
            Method::POST,
            &format!("{}/users", Self::project(project)),
            Some(req),
        )
        .await
    }

    pub async fn update_user(
        &self,
        project: &str,
        name: &str,
        req: &UpdateUser,
    ) -> ClientResult<UserView> {
        self.send(
            Method::PATCH,
            &format!("{}/users/{}", Self::project(project), seg(name)),
            Some(req),
        )
        .await
    }

    pub async fn delete_user(&self, project: &str, name: &str) -> ClientResult<()> {
        self.delete(&format!("{}/users/{}", Self::project(project), seg(name)))
            .await
    }

    pub async fn list_volumes(&self, project: &str) -> ClientResult<Vec<VolumeView>> {
        self.get(&format!("{}/volumes", Self::project(project)))
            .await
    }

    pub async fn create_volume(
        &self,
        project: &str,
        req: &CreateVolume,
    ) -> ClientResult<VolumeView> {
        self.send(
            Method::POST,
            &format!("{}/volumes", Self::project(project)),
            Some(req),
        )
        .await
    }

    pub async fn show_volume(&self, project: &str, name: &str) -> ClientResult<VolumeView> {
        self.get(&format!("{}/volumes/{}", Self::project(project), seg(name)))
            .await
    }

    pub async fn delete_volume(&self, project: &str, name: &str) -> ClientResult<()> {
        self.delete(&format!("{}/volumes/{}", Self::project(project), seg(name)))
            .await
    }

    fn volume_path(project: &str, name: &str) -> String {
        format!("{}/volumes/{}", Self::project(project), seg(name))
    }

    pub async fn list_volume_checkpoints(
        &self,
        project: &str,
        name: &str,
    ) -> ClientResult<Vec<SnapshotView>> {
        self.get(&format!("{}/checkpoints", Self::volume_path(project, name)))
            .await
    }

    pub async fn checkpoint_volume(
        &self,
        project: &str,
        name: &str,
        req: &CheckpointVolume,
    ) -> ClientResult<SnapshotView> {
        let path = format!("{}/checkpoints", Self::volume_path(project, name));
        self.send(Method::POST, &path, Some(req)).await
    }

    pub async fn list_volume_backups(
        &self,
        project: &str,
        name: &str,
    ) -> ClientResult<Vec<SnapshotView>> {
        self.get(&format!("{}/backups", Self::volume_path(project, name)))
            .await
    }

    pub async fn backup_volume(
        &self,
        project: &str,
        name: &str,
        req: &CheckpointVolume,
    ) -> ClientResult<SnapshotView> {
        let path = format!("{}/backups", Self::volume_path(project, name));
        self.send(Method::POST, &path, Some(req)).await
    }

    pub async fn restore_volume(
        &self,
        project: &str,
        name: &str,
        req: &RestoreVolume,
    ) -> ClientResult<VolumeView> {
        let path = format!("{}/restore", Self::volume_path(project, name));
        self.send(Method::POST, &path, Some(req)).await
    }

    pub async fn publish_box(
        &self,
        project: &str,
        name: &str,
        req: &PublishBox,
    ) -> ClientResult<Published> {
        let path = format!("{}/publish", Self::box_path(project, name));
        self.send(Method::POST, &path, Some(req)).await
    }

    pub async fn unpublish_box(
        &self,
        project: &str,
        name: &str,
        req: &UnpublishBox,
    ) -> ClientResult<Unpublished> {
        let path = format!("{}/unpublish", Self::box_path(project, name));
        self.send(Method::POST, &path, Some(req)).await
    }

    pub async fn list_bases(&self, project: &str) -> ClientResult<Vec<BaseSummaryView>> {
        self.get(&format!("{}/bases", Self::project(project))).await
    }

    pub async fn show_base(
        &self,
        project: &str,
        name: &str,
        tag: Option<&str>,
    ) -> ClientResult<BaseDetailsView> {
        let query = tag.map(|t| format!("?tag={}", seg(t))).unwrap_or_default();
        self.get(&format!(
            "{}/bases/{}{query}",
            Self::project(project),
            seg(name)
        ))
        .await
    }

    /// Uploads a rootfs `.tar.gz` as the next version of `name`. `body` streams it (see
    /// `reqwest::Body::wrap_stream`), so the file is never held in memory.
    pub async fn import_base(
        &self,
        project: &str,
        name: &str,
        q: &ImportBase,
        body: reqwest::Body,
    ) -> ClientResult<BaseWritten> {
        let mut query = Vec::new();
        for (key, value) in [
            ("parent", &q.parent),
            ("tag", &q.tag),
            ("builder", &q.builder),
            ("request_id", &q.request_id),
        ] {
            if let Some(v) = value {
                query.push(format!("{key}={}", seg(v)));
            }
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let url = format!(
            "{}{}/bases/{}/import{query}",
            self.base,
            Self::project(project),
            seg(name)
        );
        self.upload(Method::POST, url, "application/gzip", body)
            .await
    }

    pub async fn delete_base(&self, project: &str, name: &str) -> ClientResult<()> {
        self.delete(&format!("{}/bases/{}", Self::project(project), seg(name)))
            .await
    }
}

impl Client {
    pub async fn create_box(&self, project: &str, req: &CreateBox) -> ClientResult<BoxView> {
        self.send(
            Method::POST,
            &format!("{}/boxes", Self::project(project)),
            Some(req),
        )
        .await
    }

    pub async fn list_boxes(&self, project: &str) -> ClientResult<Vec<BoxView>> {
        self.get(&format!("{}/boxes", Self::project(project))).await
    }

    fn box_path(project: &str, name: &str) -> String {
        format!("{}/boxes/{}", Self::project(project), seg(name))
    }

    pub async fn show_box(&self, project: &str, name: &str) -> ClientResult<BoxView> {
        self.get(&Self::box_path(project, name)).await
    }

    pub async fn update_box(
        &self,
        project: &str,
        name: &str,
        req: &UpdateBox,
    ) -> ClientResult<BoxView> {
        self.send(Method::PATCH, &Self::box_path(project, name), Some(req))
            .await
    }

    pub async fn delete_box(&self, project: &str, name: &str, force: bool) -> ClientResult<()> {
        let q = if force { "?force=true" } else { "" };
        self.delete(&format!("{}{q}", Self::box_path(project, name)))
            .await
    }

    pub async fn stop_box(&self, project: &str, name: &str) -> ClientResult<BoxView> {
        self.send::<(), _>(
            Method::POST,
            &format!("{}/stop", Self::box_path(project, name)),
            None,
        )
        .await
    }

    pub async fn resume_box(&self, project: &str, name: &str) -> ClientResult<BoxView> {
        self.send::<(), _>(
            Method::POST,
            &format!("{}/resume", Self::box_path(project, name)),
            None,
        )
        .await
    }

    pub async fn exec(
        &self,
        project: &str,
        name: &str,
        cmd: &ExecCommand,
    ) -> ClientResult<ExecOutput> {
        self.send(
            Method::POST,
            &format!("{}/exec", Self::box_path(project, name)),
            Some(cmd),
        )
        .await
    }

    pub async fn exec_background(
        &self,
        project: &str,
        name: &str,
        cmd: &ExecCommand,
    ) -> ClientResult<BackgroundExec> {
        self.send(
            Method::POST,
            &format!("{}/exec", Self::box_path(project, name)),
            Some(cmd),
        )
        .await
    }

    pub async fn logs(
        &self,
        project: &str,
        name: &str,
        pid: Option<u32>,
        offset: u64,
    ) -> ClientResult<Vec<u8>> {
        let pid = pid.map(|p| format!("pid={p}&")).unwrap_or_default();
        self.send_raw::<()>(
            Method::GET,
            &format!(
                "{}/logs?{pid}offset={offset}",
                Self::box_path(project, name)
            ),
            None,
        )
        .await
    }

    pub async fn list_snapshots(
        &self,
        project: &str,
        name: &str,
    ) -> ClientResult<Vec<SnapshotView>> {
        self.get(&format!("{}/snapshots", Self::box_path(project, name)))
            .await
    }

    pub async fn create_snapshot(
        &self,
        project: &str,
        name: &str,
        req: &CreateSnapshot,
    ) -> ClientResult<SnapshotView> {
        self.send(
            Method::POST,
            &format!("{}/snapshots", Self::box_path(project, name)),
            Some(req),
        )
        .await
    }

    pub async fn restore_snapshot(
        &self,
        project: &str,
        name: &str,
        snapshot: &str,
    ) -> ClientResult<BoxView> {
        let path = format!(
            "{}/snapshots/{}/restore",
            Self::box_path(project, name),
            seg(snapshot)
        );
        self.send::<(), _>(Method::POST, &path, None).await
    }

    pub async fn diff_status(
        &self,
        project: &str,
        name: &str,
        against: Option<&str>,
    ) -> ClientResult<DiffStatusView> {
        let q = against
            .map(|a| format!("?against={}", seg(a)))
            .unwrap_or_default();
        self.get(&format!("{}/diff{q}", Self::box_path(project, name)))
            .await
    }

    pub async fn diff_file(
        &self,
        project: &str,
        name: &str,
        path: &str,
        against: Option<&str>,
    ) -> ClientResult<DiffFileView> {
        let q = against
            .map(|a| format!("&against={}", seg(a)))
            .unwrap_or_default();
        self.get(&format!(
            "{}/diff/file?path={}{q}",
            Self::box_path(project, name),
            seg(path)
        ))
        .await
    }

    pub async fn save_base(
        &self,
        project: &str,
        name: &str,
        box_name: &str,
    ) -> ClientResult<BaseWritten> {
        let req = SaveBase {
            box_name: box_name.to_owned(),
        };
        self.send(
            Method::POST,
            &format!("{}/bases/{}/save", Self::project(project), seg(name)),
            Some(&req),
        )
        .await
    }
}

/// A file coming out of a box: its mode and owner, and the response to stream its bytes from.
pub struct FileStream {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub response: reqwest::Response,
}

impl Client {
    /// Streams `body` into `path` in the box.
    pub async fn put_file(
        &self,
        project: &str,
        name: &str,
        q: &FileQuery,
        body: reqwest::Body,
    ) -> ClientResult<FileWritten> {
        let mut query = format!("path={}", seg(&q.path));
        if let Some(m) = &q.mode {
            query.push_str(&format!("&mode={}", seg(m)));
        }
        if let (Some(u), Some(g)) = (q.uid, q.gid) {
            query.push_str(&format!("&uid={u}&gid={g}"));
        }
        let url = format!(
            "{}{}/files?{query}",
            self.base,
            Self::box_path(project, name)
        );
        self.upload(Method::PUT, url, "application/octet-stream", body)
            .await
    }

    /// Opens `path` in the box for download.
    pub async fn get_file(
        &self,
        project: &str,
        name: &str,
        path: &str,
    ) -> ClientResult<FileStream> {
        let url = format!(
            "{}{}/files?path={}",
            self.base,
            Self::box_path(project, name),
            seg(path)
        );
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp
                .bytes()
                .await
                .map_err(|source| ClientError::Transport {
                    url: url.clone(),
                    source,
                })?;
            return Err(api_error(status, &bytes));
        }
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mode = header(HEADER_MODE)
            .and_then(|m| u32::from_str_radix(&m, 8).ok())
            .unwrap_or(0o644);
        let uid = header(HEADER_UID).and_then(|v| v.parse().ok()).unwrap_or(0);
        let gid = header(HEADER_GID).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(FileStream {
            mode,
            uid,
            gid,
            response: resp,
        })
    }
}

/// The WebSocket under an exec or console stream.
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Message = tokio_tungstenite::tungstenite::Message;

/// An open exec or console stream: frames in, frames out. [`ExecSocket::split`] gives a half
/// for each direction, for a reader and a writer that run side by side.
pub struct ExecSocket {
    sink: ExecSink,
    frames: ExecFrames,
}

/// The sending half of an [`ExecSocket`].
pub struct ExecSink(futures::stream::SplitSink<Socket, Message>);

/// The receiving half of an [`ExecSocket`].
pub struct ExecFrames(futures::stream::SplitStream<Socket>);

impl ExecSocket {
    fn new(socket: Socket) -> ExecSocket {
        use futures::StreamExt;
        let (sink, frames) = socket.split();
        ExecSocket {
            sink: ExecSink(sink),
            frames: ExecFrames(frames),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> ClientResult<()> {
        self.sink.send(frame).await
    }

    /// The next frame; `None` once the socket closed.
    pub async fn recv(&mut self) -> Option<ClientResult<ServerFrame>> {
        self.frames.recv().await
    }

    pub fn split(self) -> (ExecSink, ExecFrames) {
        (self.sink, self.frames)
    }
}

impl ExecSink {
    pub async fn send(&mut self, frame: &ClientFrame) -> ClientResult<()> {
        use futures::SinkExt;
        self.0
            .send(Message::Binary(frame.encode().into()))
            .await
            .map_err(ClientError::Stream)
    }

    /// Closes the socket: the server sees the client go.
    pub async fn close(mut self) -> ClientResult<()> {
        use futures::SinkExt;
        self.0.close().await.map_err(ClientError::Stream)
    }
}

impl ExecFrames {
    /// The next frame; `None` once the socket closed. Pings are answered underneath.
    pub async fn recv(&mut self) -> Option<ClientResult<ServerFrame>> {
        use futures::StreamExt;
        loop {
            let msg = match self.0.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(ClientError::Stream(e))),
            };
            return match msg {
                Message::Binary(b) => Some(ServerFrame::decode(&b).map_err(ClientError::from)),
                Message::Text(_) => Some(Err(FrameError::Text.into())),
                Message::Close(_) => None,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
        }
    }
}

impl Client {
    /// Opens `.../boxes/{name}/exec/ws` (or `.../console` when `console`) and sends `start`.
    pub async fn exec_socket(
        &self,
        project: &str,
        name: &str,
        start: &ExecStart,
        console: bool,
    ) -> ClientResult<ExecSocket> {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let tail = if console { "console" } else { "exec/ws" };
        let http_url = format!("{}{}/{tail}", self.base, Self::box_path(project, name));
        let ws_url = match http_url.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => http_url.clone(),
        };
        let unexpected = |detail: String| ClientError::Unexpected { status: 0, detail };
        let mut req = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| unexpected(e.to_string()))?;
        if let Some(t) = &self.token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| unexpected("token is not a valid header".into()))?;
            req.headers_mut().insert("authorization", value);
        }
        let (mut socket, _) = match tokio_tungstenite::connect_async(req).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status();
                let body = resp.body().clone().unwrap_or_default();
                return Err(api_error(status, &body));
            }
            Err(e) => return Err(unexpected(format!("cannot open {ws_url}: {e}"))),
        };
        let first = serde_json::to_string(start).map_err(|e| unexpected(e.to_string()))?;
        socket
            .send(Message::Text(first.into()))
            .await
            .map_err(ClientError::Stream)?;
        Ok(ExecSocket::new(socket))
    }
}

impl Client {
    pub async fn list_ports(&self, project: &str, name: &str) -> ClientResult<Vec<PortView>> {
        self.get(&format!("{}/ports", Self::box_path(project, name)))
            .await
    }

    pub async fn wait_port(
        &self,
        project: &str,
        name: &str,
        port: u16,
        timeout_secs: u64,
    ) -> ClientResult<PortView> {
        let path = format!(
            "{}/ports/{port}/wait?timeout={timeout_secs}",
            Self::box_path(project, name)
        );
        self.send::<(), _>(Method::POST, &path, None).await
    }
}

/// Tokens (admin only).
impl Client {
    pub async fn list_tokens(&self) -> ClientResult<Vec<TokenView>> {
        self.get("/v1/tokens").await
    }

    pub async fn create_token(&self, req: &CreateToken) -> ClientResult<CreatedToken> {
        self.send(Method::POST, "/v1/tokens", Some(req)).await
    }

    pub async fn revoke_token(&self, id: &str) -> ClientResult<()> {
        self.delete(&format!("/v1/tokens/{}", seg(id))).await
    }
}

/// The error a failed response carries, in the API's shape or, failing that, as received.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.error,
            message: e.message,
        },
        Err(_) => ClientError::Unexpected {
            status: status.as_u16(),
            detail: String::from_utf8_lossy(bytes).chars().take(200).collect(),
        },
    }
}

/// True for a 404 from the API.
pub fn is_not_found(e: &ClientError) -> bool {
    matches!(e, ClientError::Api { status, .. } if *status == StatusCode::NOT_FOUND.as_u16())
}
