//! Console sessions are not shared across tenants (issue 12): a session id reattaches only
//! through the route of the box it was opened in. Another project's id through a box of one's
//! own, or another box's id of the same project, answers `not_found` exactly like an unknown id
//! and shows nothing of the other screen; another project's route is refused by scope (403).
//! Spoken over WebSocket only, so it holds for every backend.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use forkr_api_proto::frame::{ClientFrame, ServerFrame};
use forkr_e2e::{Target, Tok};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/v1/projects/{project}/boxes/{name}/console` with `tok` and sends `start`; the socket,
/// or the HTTP status that refused the upgrade.
async fn console(
    t: &Target,
    tok: Tok,
    project: &str,
    name: &str,
    start: Value,
) -> Result<Ws, StatusCode> {
    let url = format!(
        "{}/v1/projects/{project}/boxes/{name}/console",
        t.url.replacen("http", "ws", 1)
    );
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    let token = match tok {
        Tok::Admin => &t.admin,
        Tok::Shop => &t.shop,
        other => panic!("no token for {other:?}"),
    };
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            ws.send(Message::text(start.to_string())).await.unwrap();
            Ok(ws)
        }
        Err(tungstenite::Error::Http(resp)) => {
            Err(StatusCode::from_u16(resp.status().as_u16()).unwrap())
        }
        Err(e) => panic!("console {project}/{name}: {e}"),
    }
}

/// What a console socket said: its output and its other frames (as the JSON of their meaning),
/// until `until` holds on the output or the socket ends.
#[derive(Debug, Default)]
struct Heard {
    output: Vec<u8>,
    texts: Vec<Value>,
}

impl Heard {
    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    fn session(&self) -> Option<String> {
        self.texts
            .iter()
            .find_map(|v| v["session"].as_str().map(str::to_owned))
    }

    fn error(&self) -> Option<&Value> {
        self.texts.iter().find(|v| v.get("error").is_some())
    }
}

async fn listen(ws: &mut Ws, until: impl Fn(&Heard) -> bool) -> Heard {
    let mut heard = Heard::default();
    let fut = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Binary(b)) => match ServerFrame::decode(&b).unwrap() {
                    ServerFrame::Stdout { data, .. } | ServerFrame::Stderr { data, .. } => {
                        heard.output.extend_from_slice(&data);
                    }
                    ServerFrame::Session(id) => heard.texts.push(json!({"session": id})),
                    ServerFrame::Exit(code) => heard.texts.push(json!({"exit": code})),
                    ServerFrame::Error(e) => heard.texts.push(serde_json::to_value(e).unwrap()),
                },
                Ok(Message::Text(t)) => panic!("a text frame after the start: {t}"),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
            if until(&heard) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("the console said {heard:?}"));
    heard
}

/// Opens a console in `project/name` and types `marker` so its screen holds it; the session id.
async fn console_with(t: &Target, tok: Tok, project: &str, name: &str, marker: &str) -> String {
    let mut ws = console(t, tok, project, name, json!({"rows": 24, "cols": 80}))
        .await
        .unwrap();
    let heard = listen(&mut ws, |h| h.session().is_some()).await;
    let id = heard
        .session()
        .unwrap_or_else(|| panic!("no session id: {heard:?}"));
    // The shell computes the marker, so the screen holds it only once the shell has run it.
    let (half, rest) = marker.split_at(marker.len() / 2);
    let line = format!("echo {half}$((6*7)){rest}\n");
    let frame = ClientFrame::Stdin(line.into_bytes()).encode();
    ws.send(Message::binary(frame)).await.unwrap();
    let want = shown(marker);
    let heard = listen(&mut ws, |h| h.output().contains(&want)).await;
    assert!(heard.output().contains(&want), "{heard:?}");
    // The client goes away; the shell stays for a reattach.
    ws.close(None).await.unwrap();
    id
}

/// What the shell prints for `marker` (see `console_with`).
fn shown(marker: &str) -> String {
    let (half, rest) = marker.split_at(marker.len() / 2);
    format!("{half}42{rest}")
}

/// A reattach to `session` through `project/name` that must be refused like an unknown id: the
/// error body (with the id masked), after checking that no output came through.
async fn refused_reattach(t: &Target, tok: Tok, project: &str, name: &str, session: &str) -> Value {
    let mut ws = console(t, tok, project, name, json!({"session": session}))
        .await
        .unwrap_or_else(|s| panic!("the upgrade of {project}/{name} answered {s}"));
    // Until the error, or anything of a session, arrives.
    let heard = listen(&mut ws, |h| {
        h.error().is_some() || h.session().is_some() || !h.output.is_empty()
    })
    .await;
    assert!(
        heard.output.is_empty() && !format!("{heard:?}").contains("42screen"),
        "a reattach through {project}/{name} read a screen: {:?}",
        heard.output()
    );
    assert_eq!(heard.session(), None, "{heard:?}");
    let err = heard
        .error()
        .unwrap_or_else(|| panic!("no error frame: {heard:?}"))
        .clone();
    assert_eq!(err["error"], "not_found", "{err}");
    let masked = err["message"].as_str().unwrap().replace(session, "ID");
    json!({"error": err["error"], "message": masked})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_session_is_reattached_only_through_its_own_box() {
    let t = Target::start().await;
    t.create_box("other", json!({"name": "vault"})).await;
    t.create_box("shop", json!({"name": "front"})).await;
    t.create_box("shop", json!({"name": "back"})).await;

    let theirs = console_with(&t, Tok::Admin, "other", "vault", "other-screen").await;
    let ours = console_with(&t, Tok::Shop, "shop", "front", "front-screen").await;
    for id in [&theirs, &ours] {
        let hex = id.strip_prefix("pty-").unwrap_or_default();
        assert!(
            hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id} is not 128 random bits"
        );
    }
    assert_ne!(theirs, ours);

    // What an unknown id answers: every refusal below must say exactly this (no oracle).
    let unknown = format!("pty-{}", "0".repeat(32));
    let want = refused_reattach(&t, Tok::Shop, "shop", "front", &unknown).await;

    // Another project's session through a box of one's own.
    for name in ["front", "back"] {
        let got = refused_reattach(&t, Tok::Shop, "shop", name, &theirs).await;
        assert_eq!(got, want, "shop/{name} reattached to other/vault's session");
    }
    // Through the other project's route: refused by scope before anything else.
    for start in [json!({"session": theirs}), json!({"rows": 24, "cols": 80})] {
        let r = console(&t, Tok::Shop, "other", "vault", start).await;
        assert_eq!(r.err(), Some(StatusCode::FORBIDDEN));
    }
    // The same project, another box; and the box binding holds for an admin too.
    let got = refused_reattach(&t, Tok::Shop, "shop", "back", &ours).await;
    assert_eq!(got, want);
    let got = refused_reattach(&t, Tok::Admin, "shop", "front", &theirs).await;
    assert_eq!(got, want);

    // The owners still reattach, and get their replay.
    for (tok, project, name, id, marker) in [
        (Tok::Admin, "other", "vault", &theirs, "other-screen"),
        (Tok::Shop, "shop", "front", &ours, "front-screen"),
    ] {
        let mut ws = console(&t, tok, project, name, json!({"session": id}))
            .await
            .unwrap();
        let want = shown(marker);
        let heard = listen(&mut ws, |h| h.output().contains(&want)).await;
        assert_eq!(heard.session().as_deref(), Some(id.as_str()), "{heard:?}");
        assert!(heard.output().contains(&want), "{heard:?}");
    }
}
