//! Tenancy: a token of one project reaches nothing of another, whatever the request names.
//!
//! The path's `{project}` is the middleware's to check; a request can also name other projects'
//! objects in its body or query (a fork source, a published host, a base every project boots
//! from). [`SURFACE`] says, for every route of `/openapi.json` and every input it documents,
//! what that input can reach; every input that can reach another project's object has a case
//! in [`attempt`], made with the `shop` token against objects of project `other`, which must be
//! refused (403) and leave everything as it was. A route or an input the table does not know
//! fails the test, so routes and fields added later are decided here or the suite is red.
//!
//! HTTP only: the suite runs against the local backend and, through FORKR_E2E_URL, the kube
//! backend.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use forkr_e2e::{Target, Tok};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What one input of a route can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Plain values, or objects of the path's project only (names are bare DNS labels,
    /// resolved there).
    Own,
    /// Objects every project reads (bases): reads are everyone's; writes are `Other` inputs.
    Shared,
    /// Can name another project's object (or one every project shares, when writing it):
    /// [`attempt`] must have a case.
    Other,
}

use Reach::{Other, Own, Shared};

/// Every route of /openapi.json ("METHOD path") with every input it documents, each keyed as
/// `{param}` (path; `{project}` is everywhere and has its own case), `?param` (query),
/// `.field` (JSON body), `body` (any other body), or `(route)` for a /v1 route without
/// `{project}`: such a route spans projects by what it is.
const SURFACE: &[(&str, &[(&str, Reach)])] = &[
    ("GET /healthz", &[]),
    ("GET /readyz", &[]),
    // Users live in the path's project.
    ("GET /v1/projects/{project}/users", &[]),
    (
        "POST /v1/projects/{project}/users",
        &[(".name", Own), (".shell", Own)],
    ),
    (
        "PATCH /v1/projects/{project}/users/{name}",
        &[("{name}", Own), (".shell", Own)],
    ),
    (
        "DELETE /v1/projects/{project}/users/{name}",
        &[("{name}", Own)],
    ),
    // Volumes, their checkpoints and backups live in the path's project; a backup is named
    // within its volume.
    ("GET /v1/projects/{project}/volumes", &[]),
    (
        "POST /v1/projects/{project}/volumes",
        &[(".name", Own), (".size", Own)],
    ),
    (
        "GET /v1/projects/{project}/volumes/{name}",
        &[("{name}", Own)],
    ),
    (
        "DELETE /v1/projects/{project}/volumes/{name}",
        &[("{name}", Own)],
    ),
    (
        "GET /v1/projects/{project}/volumes/{name}/checkpoints",
        &[("{name}", Own)],
    ),
    (
        "POST /v1/projects/{project}/volumes/{name}/checkpoints",
        &[("{name}", Own), (".name", Own), (".description", Own)],
    ),
    (
        "GET /v1/projects/{project}/volumes/{name}/backups",
        &[("{name}", Own)],
    ),
    (
        "POST /v1/projects/{project}/volumes/{name}/backups",
        &[("{name}", Own), (".name", Own), (".description", Own)],
    ),
    (
        "POST /v1/projects/{project}/volumes/{name}/restore",
        &[("{name}", Own), (".checkpoint", Own), (".backup", Own)],
    ),
    // Bases are everyone's to read; writing one is writing what other projects boot.
    ("GET /v1/projects/{project}/bases", &[]),
    (
        "GET /v1/projects/{project}/bases/{name}",
        &[("{name}", Shared), ("?tag", Own)],
    ),
    (
        "DELETE /v1/projects/{project}/bases/{name}",
        &[("{name}", Other)],
    ),
    (
        "POST /v1/projects/{project}/bases/{name}/import",
        &[
            ("{name}", Other),
            ("?parent", Shared),
            ("?tag", Own),
            ("?builder", Own),
            ("?request_id", Own),
            ("body", Own),
        ],
    ),
    (
        "POST /v1/projects/{project}/bases/{name}/save",
        &[("{name}", Other), (".box", Own)],
    ),
    // Boxes.
    ("GET /v1/projects/{project}/boxes", &[]),
    (
        "POST /v1/projects/{project}/boxes",
        &[
            (".name", Own),
            (".base", Shared),
            (".fork", Other),
            (".env", Own),
            (".cpu", Own),
            (".memory", Own),
            (".data", Own),
            (".port", Own),
            (".tags", Own),
            (".ephemeral", Own),
        ],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}",
        &[("{name}", Own)],
    ),
    (
        "PATCH /v1/projects/{project}/boxes/{name}",
        &[("{name}", Own), (".env", Own), (".tags", Own)],
    ),
    (
        "DELETE /v1/projects/{project}/boxes/{name}",
        &[("{name}", Own), ("?force", Own)],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/stop",
        &[("{name}", Own)],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/resume",
        &[("{name}", Own)],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/publish",
        &[
            ("{name}", Own),
            (".subdomain", Other),
            (".host", Other),
            (".domain", Other),
            (".force", Other),
        ],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/unpublish",
        &[
            ("{name}", Own),
            (".subdomain", Other),
            (".host", Other),
            (".domain", Other),
        ],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}/snapshots",
        &[("{name}", Own)],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/snapshots",
        &[("{name}", Own), (".name", Own), (".description", Own)],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/snapshots/{snapshot}/restore",
        &[("{name}", Own), ("{snapshot}", Own)],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}/diff",
        &[("{name}", Own), ("?against", Own)],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}/diff/file",
        &[("{name}", Own), ("?path", Own), ("?against", Own)],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/exec",
        &[
            ("{name}", Own),
            (".command", Own),
            (".sh", Own),
            (".env", Own),
            (".wd", Own),
            (".user", Own),
            (".stdin", Own),
            (".bg", Own),
        ],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}/logs",
        &[("{name}", Own), ("?pid", Own), ("?offset", Own)],
    ),
    (
        "PUT /v1/projects/{project}/boxes/{name}/files",
        &[
            ("{name}", Own),
            ("?path", Own),
            ("?mode", Own),
            ("?uid", Own),
            ("?gid", Own),
            ("body", Own),
        ],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}/files",
        &[("{name}", Own), ("?path", Own)],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}/ports",
        &[("{name}", Own)],
    ),
    (
        "POST /v1/projects/{project}/boxes/{name}/ports/{port}/wait",
        &[("{name}", Own), ("{port}", Own), ("?timeout", Own)],
    ),
    // The first frame of these sockets may name a console session; sessions are bound to
    // their project and box, which tests/sessions.rs proves.
    (
        "GET /v1/projects/{project}/boxes/{name}/exec/ws",
        &[("{name}", Own)],
    ),
    (
        "GET /v1/projects/{project}/boxes/{name}/console",
        &[("{name}", Own)],
    ),
    // Tokens span projects: an admin's only.
    ("GET /v1/tokens", &[("(route)", Other)]),
    (
        "POST /v1/tokens",
        &[
            ("(route)", Other),
            (".name", Own),
            (".admin", Other),
            (".projects", Other),
            (".expires_in", Own),
            (".expires", Own),
        ],
    ),
    (
        "DELETE /v1/tokens/{id}",
        &[("(route)", Other), ("{id}", Other)],
    ),
];

/// Every route of the document with the inputs it documents, keyed as [`SURFACE`] keys them.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let schemas = &doc["components"]["schemas"];
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let key = format!("{} {path}", method.to_uppercase());
            let mut inputs = BTreeSet::new();
            if path.starts_with("/v1/") && !path.contains("{project}") {
                inputs.insert("(route)".to_owned());
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str() {
                    Some("path") if name == "project" => {}
                    Some("path") => {
                        let param = format!("{{{name}}}");
                        assert!(
                            path.contains(&param),
                            "{key}: {name} is documented as a path parameter, but the path has none"
                        );
                        inputs.insert(param);
                    }
                    Some("query") => {
                        inputs.insert(format!("?{name}"));
                    }
                    other => panic!("{key}: parameter {name} in {other:?} is not read here"),
                }
            }
            for (content_type, media) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                if content_type != "application/json" {
                    inputs.insert("body".to_owned());
                    continue;
                }
                let schema = &media["schema"];
                let mut fields = BTreeSet::new();
                body_fields(schema, schemas, &mut fields);
                assert!(
                    !fields.is_empty(),
                    "{key}: a JSON body without properties: {schema}"
                );
                inputs.extend(fields.iter().map(|f| format!(".{f}")));
            }
            out.insert(key, inputs);
        }
    }
    out
}

/// The fields a JSON body schema accepts: its own `properties`, through `$ref`s and the
/// `allOf` parts a flattened struct is documented as (the exec command shape is shared that way).
fn body_fields(schema: &Value, schemas: &Value, out: &mut BTreeSet<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        return body_fields(
            &schemas[r.trim_start_matches("#/components/schemas/")],
            schemas,
            out,
        );
    }
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        body_fields(part, schemas, out);
    }
}

/// What the shop token must not change: project `other`'s box (its spec, root, data and env),
/// volume and backups, the bases it could write, the hosts, shop's own boxes and volumes (a
/// refused request makes nothing), and the tokens.
async fn world(t: &Target, w: &World) -> Value {
    let get = |path: String| async move { t.call(Method::GET, &path, Tok::Admin, None).await };
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| {
                x["name"]
                    .as_str()
                    .or(x["version"].as_str())
                    .map(str::to_owned)
            })
            .collect();
        n.sort();
        n
    };
    let (_, victim) = get("/v1/projects/other/boxes/victim".into()).await;
    let mut published: Vec<Value> = victim["published"].as_array().cloned().unwrap_or_default();
    published.sort_by_key(|h| h.to_string());
    let (_, inside) = t
        .sh(
            "other",
            "victim",
            "cat /root/secret /data/secret; echo \"$SECRET\"",
        )
        .await;
    let (_, web) = get("/v1/projects/shop/boxes/web".into()).await;
    let mut bases = BTreeMap::new();
    for base in w.bases() {
        let (s, v) = get(format!("/v1/projects/other/bases/{base}")).await;
        bases.insert(base, (s.as_u16(), names(&v["versions"])));
    }
    let (ts, tokens) = get("/v1/tokens".into()).await;
    let mut token_ids: Vec<String> = tokens
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["id"].as_str().map(str::to_owned))
        .collect();
    token_ids.sort();
    json!({
        "victim": {
            "status": victim["status"], "base": victim["base"], "fork_of": victim["fork_of"],
            "data": victim["data"], "port": victim["port"], "tags": victim["tags"],
            "published": published, "inside": inside,
        },
        "other_volumes": names(&get("/v1/projects/other/volumes".into()).await.1),
        "backups": names(&get("/v1/projects/other/volumes/vault/backups".into()).await.1),
        "shop_boxes": t.box_names("shop").await,
        "shop_volumes": names(&get("/v1/projects/shop/volumes".into()).await.1),
        "shop_web_published": web["published"],
        "default_boxes": t.box_names("default").await,
        "bases": bases,
        "tokens": (ts.as_u16(), token_ids),
    })
}

/// The objects of project `other`, and what the test knows of them.
struct World {
    domain: String,
    /// A token of project `other` only, when the server mints tokens over the API.
    other: Option<String>,
    other_token_id: Option<String>,
    backup: String,
    /// The exact version of the admin's shared base.
    shared_version: String,
    before: Value,
}

impl World {
    fn bases(&self) -> Vec<&'static str> {
        let mut b = vec!["box-base", "sharedbase"];
        if self.other.is_some() {
            b.push("otherbase");
        }
        b
    }
}

/// The shop token sends `body` to `path`; the answer must be `want` with error code `code`,
/// and the world must be as it was.
async fn refused(
    t: &Target,
    w: &World,
    (method, path): (Method, &str),
    body: Option<Value>,
    (want, code): (StatusCode, &str),
) -> Value {
    let (s, v) = t.call(method.clone(), path, Tok::Shop, body.clone()).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (want, Some(code)),
        "{method} {path} {body:?} with the shop token: {v}"
    );
    let after = world(t, w).await;
    assert_eq!(
        after, w.before,
        "{method} {path} {body:?} was refused but changed something"
    );
    v
}

async fn forbidden(t: &Target, w: &World, method: Method, path: &str, body: Option<Value>) {
    refused(
        t,
        w,
        (method, path),
        body,
        (StatusCode::FORBIDDEN, "forbidden"),
    )
    .await;
}

/// A 409 about a host another project has says so without naming its box or project.
fn names_no_tenant(v: &Value) {
    let m = v["message"].as_str().unwrap();
    for leak in ["victim", "other:", "\"other\""] {
        assert!(!m.contains(leak), "the message names the other tenant: {m}");
    }
}

/// The body of an import that must be refused before it is read: a real upload would be cut
/// off by the early answer. (Were it read, it would be refused as a bad tarball, not 403.)
const NOT_READ: &[u8] = b"not a tarball";

/// The refused attempts for one input that can reach another project. `false`: no case.
async fn attempt(t: &Target, w: &World, route: &str, input: &str) -> bool {
    let d = &w.domain;
    let web = "/v1/projects/shop/boxes/web";
    let post = Method::POST;
    match (route, input) {
        ("POST /v1/projects/{project}/boxes", ".fork") => {
            for fork in ["other:victim", "other.victim"] {
                forbidden(
                    t,
                    w,
                    post.clone(),
                    "/v1/projects/shop/boxes",
                    Some(json!({"name": "thief", "fork": fork})),
                )
                .await;
            }
        }
        ("DELETE /v1/projects/{project}/bases/{name}", "{name}") => {
            let mut names = vec!["box-base".to_owned(), "sharedbase".to_owned()];
            names.push(w.shared_version.clone());
            if w.other.is_some() {
                names.push("otherbase".into());
            }
            for name in names {
                let path = format!("/v1/projects/shop/bases/{name}");
                forbidden(t, w, Method::DELETE, &path, None).await;
            }
        }
        ("POST /v1/projects/{project}/bases/{name}/import", "{name}") => {
            for name in w.bases() {
                let path = format!("/v1/projects/shop/bases/{name}/import");
                let (s, v) = t.upload(&path, &t.shop, NOT_READ.to_vec()).await;
                assert_eq!(
                    (s, v["error"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "{path}: {v}"
                );
                assert_eq!(world(t, w).await, w.before, "{path} changed something");
            }
        }
        ("POST /v1/projects/{project}/bases/{name}/save", "{name}") => {
            for name in w.bases() {
                let path = format!("/v1/projects/shop/bases/{name}/save");
                forbidden(t, w, post.clone(), &path, Some(json!({"box": "web"}))).await;
            }
        }
        ("POST /v1/projects/{project}/boxes/{name}/publish", ".subdomain") => {
            let path = format!("{web}/publish");
            // The other project's URL namespace, with a box there and without.
            for sub in ["victim.other", "later.other", "a.b.other"] {
                forbidden(t, w, post.clone(), &path, Some(json!({"subdomain": sub}))).await;
            }
            // The bare domain is the server's.
            forbidden(t, w, post.clone(), &path, Some(json!({"subdomain": "@"}))).await;
            // A single label the other project published first: taken, and not said by whom.
            let v = refused(
                t,
                w,
                (post.clone(), &path),
                Some(json!({"subdomain": "site"})),
                (StatusCode::CONFLICT, "host_in_use"),
            )
            .await;
            names_no_tenant(&v);
            // The URL of a default-project box is that box's.
            let v = refused(
                t,
                w,
                (post.clone(), &path),
                Some(json!({"subdomain": "deflt"})),
                (StatusCode::CONFLICT, "host_in_use"),
            )
            .await;
            names_no_tenant(&v);
        }
        ("POST /v1/projects/{project}/boxes/{name}/publish", ".host") => {
            let path = format!("{web}/publish");
            for host in [
                format!("victim.other.{d}"),
                format!("www.other.{d}"),
                format!("later.other.{d}"),
                "evil.example.org".to_owned(),
            ] {
                forbidden(t, w, post.clone(), &path, Some(json!({"host": host}))).await;
            }
            let v = refused(
                t,
                w,
                (post.clone(), &path),
                Some(json!({"host": format!("site.{d}"), "force": true})),
                (StatusCode::FORBIDDEN, "forbidden"),
            )
            .await;
            names_no_tenant(&v);
        }
        ("POST /v1/projects/{project}/boxes/{name}/publish", ".domain") => {
            let path = format!("{web}/publish");
            for domain in [format!("other.{d}"), "example.org".to_owned()] {
                forbidden(
                    t,
                    w,
                    post.clone(),
                    &path,
                    Some(json!({"subdomain": "www", "domain": domain})),
                )
                .await;
            }
        }
        ("POST /v1/projects/{project}/boxes/{name}/publish", ".force") => {
            let path = format!("{web}/publish");
            let v = refused(
                t,
                w,
                (post.clone(), &path),
                Some(json!({"subdomain": "site", "force": true})),
                (StatusCode::FORBIDDEN, "forbidden"),
            )
            .await;
            names_no_tenant(&v);
            let v = refused(
                t,
                w,
                (post.clone(), &path),
                Some(json!({"subdomain": "deflt", "force": true})),
                (StatusCode::CONFLICT, "host_in_use"),
            )
            .await;
            names_no_tenant(&v);
        }
        ("POST /v1/projects/{project}/boxes/{name}/unpublish", input) => {
            let path = format!("{web}/unpublish");
            let body = match input {
                ".subdomain" => json!({"subdomain": "site"}),
                ".host" => json!({"host": format!("www.other.{d}")}),
                ".domain" => json!({"subdomain": "www", "domain": format!("other.{d}")}),
                _ => return false,
            };
            // As 001 says: a host the box does not have is 403 host_not_owned.
            refused(
                t,
                w,
                (post.clone(), &path),
                Some(body),
                (StatusCode::FORBIDDEN, "host_not_owned"),
            )
            .await;
        }
        ("GET /v1/tokens", "(route)") => {
            forbidden(t, w, Method::GET, "/v1/tokens", None).await;
        }
        ("POST /v1/tokens", "(route)" | ".projects" | ".admin") => {
            for body in [
                json!({"name": "thief", "projects": ["other"]}),
                json!({"name": "thief", "projects": ["shop", "other"]}),
                json!({"name": "thief", "admin": true}),
            ] {
                forbidden(t, w, post.clone(), "/v1/tokens", Some(body)).await;
            }
        }
        ("DELETE /v1/tokens/{id}", "(route)" | "{id}") => {
            let id = w.other_token_id.as_deref().unwrap_or("t0");
            forbidden(t, w, Method::DELETE, &format!("/v1/tokens/{id}"), None).await;
        }
        _ => return false,
    }
    true
}

/// `route`'s path with project `other` and the other parameters filled in.
fn concrete(route: &str) -> (Method, String) {
    let (method, path) = route.split_once(' ').unwrap();
    let path = path
        .replace("{project}", "other")
        .replace("{name}", "victim")
        .replace("{snapshot}", "v0")
        .replace("{port}", "80")
        .replace("{id}", "t0");
    (method.parse().unwrap(), path)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_route_lets_a_project_token_reach_another_project() {
    let t = Target::start().await;
    let d = t.domain.clone();
    let doc: Value = t
        .http
        .get(format!("{}/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // The table knows every route and every input of the document, and nothing else.
    let docs = documented(&doc);
    let table: BTreeMap<&str, &[(&str, Reach)]> = SURFACE.iter().copied().collect();
    let mut unknown = Vec::new();
    for (route, inputs) in &docs {
        let Some(known) = table.get(route.as_str()) else {
            unknown.push(format!("{route}: not in SURFACE"));
            continue;
        };
        for input in inputs {
            if !known.iter().any(|(k, _)| k == input) {
                unknown.push(format!("{route}: input {input} not in SURFACE"));
            }
        }
        for (k, _) in known.iter() {
            if !inputs.contains(*k) {
                unknown.push(format!(
                    "{route}: SURFACE lists {k}, which the route no longer documents"
                ));
            }
        }
    }
    for route in table.keys() {
        if !docs.contains_key(*route) {
            unknown.push(format!("{route}: in SURFACE, not in /openapi.json"));
        }
    }
    assert!(
        unknown.is_empty(),
        "decide for each whether it can name another project's object (and add a case to \
         attempt()):\n{}",
        unknown.join("\n")
    );
    let tokens_minted = docs.contains_key("POST /v1/tokens");

    // Project other: a box with a secret in its root, its env and a data volume, a backup, a
    // host of its own namespace and one single-label host published first.
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        "/v1/projects/other/volumes",
        Some(json!({"name": "vault"})),
    )
    .await;
    t.create_box(
        "other",
        json!({"name": "victim", "env": {"SECRET": "s3cret"}, "data": ["vault=/data"]}),
    )
    .await;
    let (code, _) = t
        .sh(
            "other",
            "victim",
            "echo root-secret > /root/secret && echo data-secret > /data/secret",
        )
        .await;
    assert_eq!(code, 0);
    // Backups outlive their volume and a reused server keeps them: each run names its own.
    let backup = forkr_e2e::unique("b");
    t.expect(
        StatusCode::CREATED,
        Method::POST,
        "/v1/projects/other/volumes/vault/backups",
        Some(json!({"name": backup})),
    )
    .await;
    for body in [
        json!({"subdomain": "site"}),
        json!({"subdomain": "www.other"}),
    ] {
        t.expect(
            StatusCode::OK,
            Method::POST,
            "/v1/projects/other/boxes/victim/publish",
            Some(body),
        )
        .await;
    }
    // A default-project box, whose URL is `deflt.{domain}`.
    t.create_box("default", json!({"name": "deflt"})).await;
    // A base made by an admin is shared: no project owns it.
    let (s, v) = t
        .upload(
            "/v1/projects/other/bases/sharedbase/import",
            &t.admin,
            Target::tiny_base(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let shared_version = v["version"].as_str().unwrap().to_owned();
    // A base of project other, made with a token of that project.
    let (mut other, mut other_token_id) = (None, None);
    if tokens_minted {
        let v = t
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/tokens",
                Some(json!({"name": "tenancy-routes-other", "projects": ["other"]})),
            )
            .await;
        let token = v["token"].as_str().unwrap().to_owned();
        other_token_id = Some(v["id"].as_str().unwrap().to_owned());
        let (s, v) = t
            .upload(
                "/v1/projects/other/bases/otherbase/import",
                &token,
                Target::tiny_base(),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        other = Some(token);
    }
    // Project shop has one box, which the attempts name as theirs.
    let (s, v) = t
        .call(
            Method::POST,
            "/v1/projects/shop/boxes",
            Tok::Shop,
            Some(json!({"name": "web", "port": 8000})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let mut w = World {
        domain: d.clone(),
        other,
        other_token_id,
        backup,
        shared_version,
        before: Value::Null,
    };
    w.before = world(&t, &w).await;
    assert_eq!(
        w.before["victim"]["inside"], "root-secret\ndata-secret\ns3cret\n",
        "{}",
        w.before
    );
    assert!(
        w.before["backups"]
            .as_array()
            .unwrap()
            .contains(&json!(w.backup)),
        "{}",
        w.before
    );

    // Every route: the path's project is the middleware's to refuse.
    for route in docs.keys().filter(|r| r.contains("{project}")) {
        let (method, path) = concrete(route);
        forbidden(&t, &w, method, &path, None).await;
    }
    // Every input that can reach another project: its cases.
    let mut no_case = Vec::new();
    for (route, inputs) in SURFACE {
        for (input, reach) in inputs.iter() {
            if *reach == Other && !attempt(&t, &w, route, input).await {
                no_case.push(format!("{route} {input}"));
            }
        }
    }
    assert!(
        no_case.is_empty(),
        "inputs that can name another project's object but have no case in attempt():\n{}",
        no_case.join("\n")
    );
    // What resolves in the path's project does: shop has no volume `vault`, so naming it
    // reaches nothing of other's.
    let v = refused(
        &t,
        &w,
        (Method::POST, "/v1/projects/shop/boxes"),
        Some(json!({"name": "thief", "data": ["vault=/data"]})),
        (StatusCode::BAD_REQUEST, "volume_not_found"),
    )
    .await;
    assert!(v["message"].as_str().unwrap().contains("\"shop\""), "{v}");

    // An admin still reaches everything: a fork across projects copies the root, env and data.
    let fork = t
        .create_box("shop", json!({"name": "adminfork", "fork": "other:victim"}))
        .await;
    assert_eq!(fork["fork_of"], "other:victim", "{fork}");
    assert_eq!(
        t.sh(
            "shop",
            "adminfork",
            "cat /root/secret /data/secret; echo \"$SECRET\""
        )
        .await
        .1,
        "root-secret\ndata-secret\ns3cret\n"
    );
    // ... and --force takes a host from another project.
    t.expect(
        StatusCode::OK,
        Method::POST,
        "/v1/projects/shop/boxes/adminfork/publish",
        Some(json!({"subdomain": "site", "force": true})),
    )
    .await;
    let victim = t
        .expect(
            StatusCode::OK,
            Method::GET,
            "/v1/projects/other/boxes/victim",
            None,
        )
        .await;
    assert_eq!(victim["published"], json!([format!("www.other.{d}")]));
    // A base's owner deletes it; an admin deletes a shared one.
    if let Some(token) = &w.other {
        let (s, v) = t
            .call_as(
                Method::DELETE,
                "/v1/projects/other/bases/otherbase",
                token,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    t.expect(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        "/v1/projects/shop/bases/sharedbase",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_owns_the_bases_it_makes_and_only_admins_write_shared_ones() {
    let t = Target::start().await;
    let tiny = Target::tiny_base();
    let import = |name: &str, token: &str| {
        let path = format!("/v1/projects/shop/bases/{name}/import");
        let token = token.to_owned();
        let bytes = tiny.clone();
        let t = &t;
        async move { t.upload(&path, &token, bytes).await }
    };
    // A refused import is answered before its upload is read (and the server then drops the
    // connection under the rest of a large one), so refused attempts send a few bytes.
    let refused_import = |name: &str, token: &str| {
        let path = format!("/v1/projects/shop/bases/{name}/import");
        let token = token.to_owned();
        let t = &t;
        async move { t.upload(&path, &token, NOT_READ.to_vec()).await }
    };
    // box-base is what every project's boxes boot by default: admins only.
    let (s, v) = refused_import("box-base", &t.shop).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{v}"
    );
    // A new name becomes shop's, and shop writes new versions of it and deletes them.
    let (s, first) = import("shopbase", &t.shop).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, second) = import("shopbase", &t.shop).await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    assert_ne!(first["version"], second["version"]);
    let (s, v) = t
        .call(
            Method::POST,
            "/v1/projects/shop/boxes",
            Tok::Shop,
            Some(json!({"name": "src"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = t
        .call(
            Method::POST,
            "/v1/projects/shop/bases/shopbase/save",
            Tok::Shop,
            Some(json!({"box": "src"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Another project reads it and boots from it (with its own token when the server mints
    // tokens over the API), and writes none of it.
    let minted = t
        .call(
            Method::POST,
            "/v1/tokens",
            Tok::Admin,
            Some(json!({"name": "tenancy-bases-other", "projects": ["other"]})),
        )
        .await;
    let other =
        (minted.0 == StatusCode::CREATED).then(|| minted.1["token"].as_str().unwrap().to_owned());
    let reader = json!({"name": "reader", "base": "shopbase"});
    let (s, booted) = match &other {
        Some(token) => {
            t.call_as(
                Method::POST,
                "/v1/projects/other/boxes",
                token,
                Some(reader),
            )
            .await
        }
        None => {
            t.call(
                Method::POST,
                "/v1/projects/other/boxes",
                Tok::Admin,
                Some(reader),
            )
            .await
        }
    };
    assert_eq!(s, StatusCode::CREATED, "{booted}");
    assert!(
        booted["base"].as_str().unwrap().starts_with("shopbase"),
        "{booted}"
    );
    t.delete_boxes("other", &["reader"]).await;
    if let Some(other) = other {
        let before = t
            .expect(
                StatusCode::OK,
                Method::GET,
                "/v1/projects/other/bases/shopbase",
                None,
            )
            .await;
        let (s, v) = refused_import("shopbase", &other).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let version = first["version"].as_str().unwrap();
        for name in ["shopbase", version] {
            let (s, v) = t
                .call_as(
                    Method::DELETE,
                    &format!("/v1/projects/other/bases/{name}"),
                    &other,
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{name}: {v}");
        }
        let after = t
            .expect(
                StatusCode::OK,
                Method::GET,
                "/v1/projects/other/bases/shopbase",
                None,
            )
            .await;
        assert_eq!(before, after);
    }
    // A base an admin made is shared: shop neither adds a version nor deletes it.
    let (s, v) = import("adminbase", &t.admin).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = refused_import("adminbase", &t.shop).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = t
        .call(
            Method::DELETE,
            "/v1/projects/shop/bases/adminbase",
            Tok::Shop,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    t.expect(
        StatusCode::OK,
        Method::GET,
        "/v1/projects/shop/bases/adminbase",
        None,
    )
    .await;
    // A failed first import claims nothing: the name stays free for whoever imports it next.
    let (s, _) = t
        .upload(
            "/v1/projects/shop/bases/brokenbase/import",
            &t.shop,
            b"not a tarball either".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = import("brokenbase", &t.admin).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = refused_import("brokenbase", &t.shop).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an admin's base is shared");
    // The owner deletes its base; an admin deletes anything.
    t.delete_boxes("shop", &["src"]).await;
    let (s, v) = t
        .call(
            Method::DELETE,
            "/v1/projects/shop/bases/shopbase",
            Tok::Shop,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    for name in ["adminbase", "brokenbase"] {
        t.expect(
            StatusCode::NO_CONTENT,
            Method::DELETE,
            &format!("/v1/projects/shop/bases/{name}"),
            None,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn published_hosts_follow_the_tenancy_rules() {
    let t = Target::start().await;
    let d = t.domain.clone();
    let publish = |project: &str, name: &str, tok: Tok, body: Value| {
        let path = format!("/v1/projects/{project}/boxes/{name}/publish");
        let t = &t;
        async move { t.call(Method::POST, &path, tok, Some(body)).await }
    };
    let (s, v) = t
        .call(
            Method::POST,
            "/v1/projects/shop/boxes",
            Tok::Shop,
            Some(json!({"name": "web", "port": 8000})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    t.create_box("shop", json!({"name": "api"})).await;
    // Its own namespace and free single labels are a project's to publish.
    for (body, host) in [
        (json!({"subdomain": "www.shop"}), format!("www.shop.{d}")),
        (
            json!({"host": format!("a.b.shop.{d}")}),
            format!("a.b.shop.{d}"),
        ),
        (json!({"subdomain": "early"}), format!("early.{d}")),
    ] {
        let (s, v) = publish("shop", "web", Tok::Shop, body).await;
        assert_eq!((s, v), (StatusCode::OK, json!({"host": host})));
    }
    // Within the project, --force moves a host, and the conflict may name the box.
    let (s, v) = publish("shop", "api", Tok::Shop, json!({"subdomain": "early"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("shop:web"), "{v}");
    let (s, v) = publish(
        "shop",
        "api",
        Tok::Shop,
        json!({"subdomain": "early", "force": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = publish(
        "shop",
        "web",
        Tok::Shop,
        json!({"subdomain": "early", "force": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A host outside the server's domain needs an admin; the admin may.
    let (s, v) = publish(
        "shop",
        "web",
        Tok::Shop,
        json!({"host": "shop.example.org"}),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, v) = publish(
        "shop",
        "web",
        Tok::Admin,
        json!({"host": "shop.example.org"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Not even an admin puts a box in another project's namespace.
    let (s, _) = publish("shop", "web", Tok::Admin, json!({"subdomain": "x.other"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A default-project box created after its URL host was published is told; the host
    // stays with the box that published it first.
    let early = t.create_box("default", json!({"name": "early"})).await;
    let message = early["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("early.{d}")) && message.contains("taken"),
        "{early}"
    );
    assert!(!message.contains("shop:web"), "{early}");
    let shown = t
        .expect(
            StatusCode::OK,
            Method::GET,
            "/v1/projects/shop/boxes/web",
            None,
        )
        .await;
    assert!(
        shown["published"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("early.{d}"))),
        "{shown}"
    );
    // The proxy routes the host to the first publisher, and a box URL of another project
    // only to that box.
    if let Some(proxy) = t.proxy {
        t.expect(
            StatusCode::ACCEPTED,
            Method::POST,
            "/v1/projects/shop/boxes/web/exec",
            Some(json!({"command": ["mkdir -p /srv && echo shop web > /srv/index.html && exec httpd -f -p 8000 -h /srv"], "sh": true, "bg": true})),
        )
        .await;
        t.expect(
            StatusCode::OK,
            Method::POST,
            "/v1/projects/shop/boxes/web/ports/8000/wait?timeout=10",
            None,
        )
        .await;
        let get = |host: String| {
            let req = t.http.get(format!("http://{proxy}/")).header("host", host);
            async move {
                let r = req.send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        assert_eq!(
            get(format!("early.{d}")).await,
            (StatusCode::OK, "shop web\n".to_owned())
        );
        assert_eq!(
            get(format!("www.shop.{d}")).await,
            (StatusCode::OK, "shop web\n".to_owned())
        );
    }
}
