//! Every validation rule with its exact error text and code. forkr-api and 4kr print these
//! messages unchanged, so a change here is a change users see.

// Helpers outside #[test] functions panic on broken fixtures too; that is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use forkr_crds::validation::*;

/// (input, Ok or the exact message, code)
type Case<'a> = (&'a str, Result<(), &'a str>, &'a str);

fn run(what: &str, check: impl Fn(&str) -> Result<(), ValidationError>, cases: &[Case]) {
    for (input, want, code) in cases {
        let got = check(input);
        match (want, &got) {
            (Ok(()), Ok(())) => {}
            (Err(msg), Err(e)) => {
                assert_eq!(&e.to_string(), msg, "{what}({input:?})");
                assert_eq!(e.code(), *code, "{what}({input:?}) code");
            }
            _ => panic!("{what}({input:?}): want {want:?}, got {got:?}"),
        }
    }
}

const BOX_RULE: &str = "use 1-63 lowercase letters, digits or '-', starting with a letter and ending with a letter or digit";
const LABEL_RULE: &str =
    "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit";

#[test]
fn box_names() {
    let long = "a".repeat(63);
    let too_long = "a".repeat(64);
    run(
        "box",
        validate_box_name,
        &[
            ("web", Ok(()), ""),
            ("web-1", Ok(()), ""),
            (&long, Ok(()), ""),
            ("ephemeral-4242-1700000000000", Ok(()), ""),
            (
                "",
                Err(&format!("invalid box name \"\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                &too_long,
                Err(&format!("invalid box name \"{too_long}\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                "1web",
                Err(&format!("invalid box name \"1web\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                "Web",
                Err(&format!("invalid box name \"Web\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                "web-",
                Err(&format!("invalid box name \"web-\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                "we_b",
                Err(&format!("invalid box name \"we_b\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                "a.b",
                Err(&format!("invalid box name \"a.b\": {BOX_RULE}")),
                "invalid_name",
            ),
        ],
    );
}

#[test]
fn project_service_volume_names() {
    run(
        "project",
        validate_project_name,
        &[
            ("default", Ok(()), ""),
            ("7eleven", Ok(()), ""),
            ("shop", Ok(()), ""),
            (
                "kube-system",
                Err("project name \"kube-system\" is reserved"),
                "invalid_name",
            ),
            (
                "-x",
                Err(&format!("invalid project name \"-x\": {LABEL_RULE}")),
                "invalid_name",
            ),
            (
                "My_Repo",
                Err(&format!("invalid project name \"My_Repo\": {LABEL_RULE}")),
                "invalid_name",
            ),
        ],
    );
    run(
        "service",
        validate_service_name,
        &[
            ("web", Ok(()), ""),
            ("api-2", Ok(()), ""),
            (
                "Web",
                Err(&format!("invalid service name \"Web\": {LABEL_RULE}")),
                "invalid_name",
            ),
            (
                "",
                Err(&format!("invalid service name \"\": {LABEL_RULE}")),
                "invalid_name",
            ),
        ],
    );
    run(
        "volume",
        validate_volume_name,
        &[
            ("pgdata-orders", Ok(()), ""),
            (
                "pg_data",
                Err(&format!(
                    "invalid data volume name \"pg_data\": {LABEL_RULE}"
                )),
                "invalid_name",
            ),
        ],
    );
}

#[test]
fn user_names() {
    let rule = "use 1-32 characters of [a-z0-9_-]";
    run(
        "user",
        validate_user_name,
        &[
            ("alice", Ok(()), ""),
            ("_build-bot_2", Ok(()), ""),
            (&"a".repeat(32), Ok(()), ""),
            (
                &"a".repeat(33),
                Err(&format!("invalid user name \"{}\": {rule}", "a".repeat(33))),
                "invalid_name",
            ),
            (
                "",
                Err(&format!("invalid user name \"\": {rule}")),
                "invalid_name",
            ),
            (
                "Alice",
                Err(&format!("invalid user name \"Alice\": {rule}")),
                "invalid_name",
            ),
            (
                "al.ice",
                Err(&format!("invalid user name \"al.ice\": {rule}")),
                "invalid_name",
            ),
            (
                "root",
                Err("user name \"root\" is reserved"),
                "invalid_name",
            ),
            (
                "nobody",
                Err("user name \"nobody\" is reserved"),
                "invalid_name",
            ),
            (
                "www-data",
                Err("user name \"www-data\" is reserved"),
                "invalid_name",
            ),
            (
                "systemd-oom",
                Err("user name \"systemd-oom\" is reserved"),
                "invalid_name",
            ),
        ],
    );
}

#[test]
fn snapshot_names() {
    let rule = "use 1-63 characters matching ^[a-zA-Z0-9_.-]+$, other than . and ..";
    run(
        "snapshot",
        validate_snapshot_name,
        &[
            ("v0", Ok(()), ""),
            ("before-upgrade", Ok(()), ""),
            ("Pre_Release.1", Ok(()), ""),
            ("...", Ok(()), ""),
            (
                ".",
                Err(&format!("invalid snapshot name \".\": {rule}")),
                "invalid_name",
            ),
            (
                "..",
                Err(&format!("invalid snapshot name \"..\": {rule}")),
                "invalid_name",
            ),
            (
                "a/b",
                Err(&format!("invalid snapshot name \"a/b\": {rule}")),
                "invalid_name",
            ),
            (
                "a b",
                Err(&format!("invalid snapshot name \"a b\": {rule}")),
                "invalid_name",
            ),
            (
                "",
                Err(&format!("invalid snapshot name \"\": {rule}")),
                "invalid_name",
            ),
        ],
    );
}

#[test]
fn base_names_and_refs() {
    let base_rule =
        "use 1-47 lowercase letters, digits or '-', starting and ending with a letter or digit";
    run(
        "alias",
        validate_base_alias,
        &[
            ("box-base", Ok(()), ""),
            (&"b".repeat(47), Ok(()), ""),
            (
                &"b".repeat(48),
                Err(&format!(
                    "invalid base name \"{}\": {base_rule}",
                    "b".repeat(48)
                )),
                "invalid_name",
            ),
        ],
    );
    run(
        "base ref",
        validate_base_ref,
        &[
            ("box-base", Ok(()), ""),
            ("my-base-v20260101120000", Ok(()), ""),
            ("dev-base:3b1f9c2a", Ok(()), ""),
            (
                "dev-base:3B1F",
                Err(
                    "invalid base name \"dev-base:3B1F\": the tag after ':' must be 1-64 lowercase hex digits of a build script's sha256",
                ),
                "invalid_name",
            ),
            (
                "dev-base:",
                Err(
                    "invalid base name \"dev-base:\": the tag after ':' must be 1-64 lowercase hex digits of a build script's sha256",
                ),
                "invalid_name",
            ),
        ],
    );
}

#[test]
fn env_keys() {
    for key in RESERVED_ENV {
        let err = validate_env_key(key).unwrap_err();
        assert_eq!(err.to_string(), "environment variable is reserved");
        assert_eq!(err.code(), "reserved_env");
        assert_eq!(
            err,
            ValidationError::ReservedEnv {
                key: (*key).to_owned()
            }
        );
    }
    let rule = "use letters, digits and '_', not starting with a digit";
    run(
        "env key",
        validate_env_key,
        &[
            ("DATABASE_URL", Ok(()), ""),
            ("_x1", Ok(()), ""),
            ("FORKR_NODE_IP", Ok(()), ""),
            (
                "1X",
                Err(&format!("invalid environment variable name \"1X\": {rule}")),
                "invalid_env",
            ),
            (
                "A-B",
                Err(&format!(
                    "invalid environment variable name \"A-B\": {rule}"
                )),
                "invalid_env",
            ),
            (
                "",
                Err(&format!("invalid environment variable name \"\": {rule}")),
                "invalid_env",
            ),
        ],
    );
    assert_eq!(
        parse_env_assignment("A=b=c").unwrap(),
        ("A".into(), "b=c".into())
    );
    assert_eq!(
        parse_env_assignment("A=").unwrap(),
        ("A".into(), String::new())
    );
    assert_eq!(
        parse_env_assignment("A").unwrap_err().to_string(),
        "invalid environment assignment \"A\": expected KEY=VALUE"
    );
    assert_eq!(
        parse_env_assignment("TERM=dumb").unwrap_err().to_string(),
        "environment variable is reserved"
    );
    let env = BTreeMap::from([("OK".to_owned(), "a\0b".to_owned())]);
    assert_eq!(
        validate_env(&env).unwrap_err().to_string(),
        "env.OK: invalid environment variable \"OK\": the value contains a NUL byte"
    );
}

#[test]
fn data_mounts() {
    let ok = |arg: &str, volume: &str, path: &str, ro: bool| {
        assert_eq!(
            parse_data_mount(arg).unwrap(),
            DataMountArg {
                volume: volume.into(),
                mount_path: path.into(),
                read_only: ro
            },
            "{arg}"
        );
    };
    ok(
        "pgdata=/var/lib/postgresql/data",
        "pgdata",
        "/var/lib/postgresql/data",
        false,
    );
    ok("cache=/cache:ro", "cache", "/cache", true);
    ok("cache=/cache:rw", "cache", "/cache", false);
    ok("cache=/a//b/./c/", "cache", "/a/b/c", false);
    ok("cache=/procs", "cache", "/procs", false);
    let syntax = |arg: &str| format!("invalid data mount \"{arg}\": expected NAME=/path[:ro|:rw]");
    run(
        "mount",
        |a| parse_data_mount(a).map(drop),
        &[
            ("pgdata", Err(&syntax("pgdata")), "invalid_mount"),
            ("=/data", Err(&syntax("=/data")), "invalid_mount"),
            ("pgdata=", Err(&syntax("pgdata=")), "invalid_mount"),
            (
                "pgdata=/data:rx",
                Err(&syntax("pgdata=/data:rx")),
                "invalid_mount",
            ),
            (
                "pgdata=data",
                Err("mount path \"data\" must be absolute"),
                "invalid_mount",
            ),
            (
                "pgdata=/",
                Err("mount path \"/\" cannot be under / (the box root)"),
                "invalid_mount",
            ),
            (
                "pgdata=/proc",
                Err("mount path \"/proc\" cannot be under /proc"),
                "invalid_mount",
            ),
            (
                "pgdata=/sys/x",
                Err("mount path \"/sys/x\" cannot be under /sys"),
                "invalid_mount",
            ),
            (
                "pgdata=/dev/shm",
                Err("mount path \"/dev/shm\" cannot be under /dev"),
                "invalid_mount",
            ),
            (
                "pgdata=/run",
                Err("mount path \"/run\" cannot be under /run"),
                "invalid_mount",
            ),
            (
                "pgdata=/etc/ssl:ro",
                Err("mount path \"/etc/ssl\" cannot be under /etc"),
                "invalid_mount",
            ),
            (
                "pgdata=/volumes",
                Err("mount path \"/volumes\" cannot be under /volumes"),
                "invalid_mount",
            ),
            (
                "pgdata=/data/../etc",
                Err("mount path \"/data/../etc\" cannot be under /etc"),
                "invalid_mount",
            ),
            (
                "PG=/data",
                Err(&format!("invalid data volume name \"PG\": {LABEL_RULE}")),
                "invalid_name",
            ),
        ],
    );
    let mounts = |pairs: &[(&str, &str)]| -> Vec<forkr_crds::DataMount> {
        pairs
            .iter()
            .map(|(v, p)| forkr_crds::DataMount {
                volume: (*v).into(),
                mount_path: (*p).into(),
                read_only: false,
            })
            .collect()
    };
    validate_mounts(&mounts(&[("a", "/a"), ("b", "/b")])).unwrap();
    assert_eq!(
        validate_mounts(&mounts(&[("a", "/a"), ("a", "/b")]))
            .unwrap_err()
            .to_string(),
        "data[1].volume: mount name \"a\" is used twice: each mount name must be unique"
    );
    assert_eq!(
        validate_mounts(&mounts(&[("a", "/a"), ("b", "/a/")]))
            .unwrap_err()
            .to_string(),
        "data[1].mountPath: mount path \"/a/\" is used twice"
    );
}

#[test]
fn ports_grace_and_quantities() {
    let port = |v: &str| format!("invalid PORT \"{v}\": must be an integer from 1 to 65535");
    run(
        "port",
        |v| validate_port(v).map(drop),
        &[
            ("1", Ok(()), ""),
            ("65535", Ok(()), ""),
            ("0", Err(&port("0")), "invalid_port"),
            ("65536", Err(&port("65536")), "invalid_port"),
            ("http", Err(&port("http")), "invalid_port"),
            ("-1", Err(&port("-1")), "invalid_port"),
        ],
    );
    let grace = |v: &str| {
        format!(
            "invalid termination grace period \"{v}\": must be an integer from 0 to 86400 seconds"
        )
    };
    run(
        "grace",
        |v| validate_grace(v).map(drop),
        &[
            ("0", Ok(()), ""),
            ("86400", Ok(()), ""),
            ("86401", Err(&grace("86401")), "invalid_grace"),
            ("-5", Err(&grace("-5")), "invalid_grace"),
            ("1.5", Err(&grace("1.5")), "invalid_grace"),
        ],
    );
    assert_eq!(cpu_millis("500m").unwrap(), 500);
    assert_eq!(cpu_millis("2").unwrap(), 2000);
    assert_eq!(cpu_millis("1.5").unwrap(), 1500);
    assert_eq!(
        cpu_millis("0.1m").unwrap(),
        1,
        "sub-milli CPU rounds up, as Kubernetes does"
    );
    assert_eq!(cpu_millis("1e3").unwrap(), 1_000_000);
    assert_eq!(memory_bytes("512Mi").unwrap(), 512 << 20);
    assert_eq!(memory_bytes("2Gi").unwrap(), 2 << 30);
    assert_eq!(memory_bytes("1G").unwrap(), 1_000_000_000);
    assert_eq!(memory_bytes("1.5Gi").unwrap(), 3 << 29);
    run(
        "cpu",
        |v| cpu_millis(v).map(drop),
        &[
            (
                "0",
                Err("invalid CPU \"0\": must be greater than zero"),
                "invalid_quantity",
            ),
            (
                "-1",
                Err("invalid CPU \"-1\": must not be negative"),
                "invalid_quantity",
            ),
            (
                "two",
                Err("invalid CPU \"two\": expected a number such as 500m, 2, 1.5, 512Mi or 2Gi"),
                "invalid_quantity",
            ),
            (
                "2cores",
                Err(
                    "invalid CPU \"2cores\": unknown suffix: use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei",
                ),
                "invalid_quantity",
            ),
            (
                "99999999999999999999",
                Err("invalid CPU \"99999999999999999999\": too many digits"),
                "invalid_quantity",
            ),
        ],
    );
    run(
        "memory",
        |v| memory_bytes(v).map(drop),
        &[
            (
                "1Mi",
                Err("invalid memory \"1Mi\": must be at least 16Mi"),
                "invalid_quantity",
            ),
            (
                "8Ei",
                Err("invalid memory \"8Ei\": too large"),
                "invalid_quantity",
            ),
        ],
    );
}

#[test]
fn update_allowlist() {
    let settings = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let u = parse_box_update(
        &settings(&[
            ("PORT", "8080"),
            ("CPU", "2"),
            ("MEMORY", "4Gi"),
            ("TERMINATION_GRACE_SECONDS", "30"),
            ("FOO", "bar"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(
        u,
        BoxUpdate {
            port: Some(8080),
            cpu: Some("2".into()),
            memory: Some("4Gi".into()),
            termination_grace_period_seconds: Some(30),
            tags: None
        }
    );
    let both = parse_box_update(
        &settings(&[
            ("TERMINATION_GRACE_PERIOD_SECONDS", "10"),
            ("TERMINATION_GRACE_SECONDS", "20"),
        ]),
        None,
    )
    .unwrap();
    assert_eq!(both.termination_grace_period_seconds, Some(10));
    assert_eq!(
        parse_box_update(&settings(&[("port", "81")]), None)
            .unwrap()
            .port,
        Some(81)
    );
    let nothing = parse_box_update(&settings(&[("FOO", "bar"), ("DEBUG", "1")]), None).unwrap_err();
    assert_eq!(nothing.to_string(), "no updates provided");
    assert_eq!(nothing.code(), "no_updates");
    assert_eq!(
        parse_box_update(&BTreeMap::new(), Some(&BTreeMap::new())).unwrap_err(),
        ValidationError::NoUpdates
    );
    let tags = BTreeMap::from([("box.ui".to_owned(), "main".to_owned())]);
    assert_eq!(
        parse_box_update(&BTreeMap::new(), Some(&tags))
            .unwrap()
            .tags,
        Some(tags)
    );
    assert_eq!(
        parse_box_update(&settings(&[("PORT", "0")]), None)
            .unwrap_err()
            .to_string(),
        "invalid PORT \"0\": must be an integer from 1 to 65535"
    );
    let bad_tag = BTreeMap::from([("a b".to_owned(), "x".to_owned())]);
    assert_eq!(
        parse_box_update(&BTreeMap::new(), Some(&bad_tag))
            .unwrap_err()
            .to_string(),
        "invalid tag key \"a b\": use 1-63 letters, digits, '.', '_', '-' or '/'"
    );
}

#[test]
fn hosts() {
    assert_eq!(
        publish_host(Some("app"), None, "example.com").unwrap(),
        "app.example.com"
    );
    assert_eq!(
        publish_host(Some("@"), None, "example.com").unwrap(),
        "example.com"
    );
    assert_eq!(
        publish_host(None, Some("My.Host.IO"), "example.com").unwrap(),
        "my.host.io"
    );
    assert_eq!(
        publish_host(None, None, "example.com")
            .unwrap_err()
            .to_string(),
        "invalid publish target \"\": a subdomain is required unless --host is given"
    );
    assert_eq!(
        publish_host(Some("a"), Some("b.c"), "example.com")
            .unwrap_err()
            .to_string(),
        "invalid publish target \"\": give a subdomain or --host, not both"
    );
    let label = "each dot-separated label must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit";
    run(
        "host",
        validate_host,
        &[
            ("app.example.com", Ok(()), ""),
            ("localhost", Ok(()), ""),
            (
                "*.example.com",
                Err(&format!("invalid host \"*.example.com\": {label}")),
                "invalid_host",
            ),
            (
                "a..b",
                Err(&format!("invalid host \"a..b\": {label}")),
                "invalid_host",
            ),
            (
                "-a.b",
                Err(&format!("invalid host \"-a.b\": {label}")),
                "invalid_host",
            ),
            (
                "",
                Err("invalid host \"\": a hostname is 1 to 253 characters"),
                "invalid_host",
            ),
        ],
    );
}

#[test]
fn refs() {
    let named = |p: Option<&str>, b: &str| BoxRef {
        project: p.map(Into::into),
        target: BoxTarget::Named(b.into()),
    };
    assert_eq!(parse_ref("web").unwrap(), named(None, "web"));
    assert_eq!(parse_ref("shop:web").unwrap(), named(Some("shop"), "web"));
    assert_eq!(parse_ref("shop.web").unwrap(), named(Some("shop"), "web"));
    assert_eq!(
        parse_ref("-").unwrap(),
        BoxRef {
            project: None,
            target: BoxTarget::Ephemeral
        }
    );
    assert_eq!(
        parse_ref("shop:-").unwrap(),
        BoxRef {
            project: Some("shop".into()),
            target: BoxTarget::Ephemeral
        }
    );
    assert_eq!(
        parse_ref(".").unwrap(),
        BoxRef {
            project: None,
            target: BoxTarget::Current
        }
    );
    let grammar = "expected box, project:box, project.box, -, project:- or .";
    run(
        "ref",
        |r| parse_ref(r).map(drop),
        &[
            (
                "",
                Err(&format!("invalid box ref \"\": {grammar}")),
                "invalid_ref",
            ),
            (
                "a:b:c",
                Err(&format!("invalid box ref \"a:b:c\": {grammar}")),
                "invalid_ref",
            ),
            (
                "a:b.c",
                Err(&format!("invalid box ref \"a:b.c\": {grammar}")),
                "invalid_ref",
            ),
            (
                "shop:",
                Err(&format!("invalid box name \"\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                ":web",
                Err(&format!("invalid project name \"\": {LABEL_RULE}")),
                "invalid_name",
            ),
            (
                "Shop:web",
                Err(&format!("invalid project name \"Shop\": {LABEL_RULE}")),
                "invalid_name",
            ),
        ],
    );

    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let resolved = |p: &str, b: &str| ResolvedBox {
        project: p.into(),
        target: ResolvedTarget::Named(b.into()),
    };
    assert_eq!(
        parse_ref("web")
            .unwrap()
            .resolve("default", env(&[]))
            .unwrap(),
        resolved("default", "web")
    );
    assert_eq!(
        parse_ref("shop:web")
            .unwrap()
            .resolve("default", env(&[]))
            .unwrap(),
        resolved("shop", "web")
    );
    assert_eq!(
        parse_ref(".")
            .unwrap()
            .resolve(
                "default",
                env(&[("BOX_NAME", "api"), ("FORKR_PROJECT", "shop")])
            )
            .unwrap(),
        resolved("shop", "api")
    );
    assert_eq!(
        parse_ref(".")
            .unwrap()
            .resolve("mine", env(&[("BOX_NAME", "api")]))
            .unwrap(),
        resolved("mine", "api")
    );
    let outside = parse_ref(".")
        .unwrap()
        .resolve("default", env(&[]))
        .unwrap_err();
    assert_eq!(
        outside.to_string(),
        "`.` means the current box, but BOX_NAME is not set: run this inside a box or name the box"
    );
    assert_eq!(
        parse_ref("shop:-")
            .unwrap()
            .resolve("default", env(&[]))
            .unwrap(),
        ResolvedBox {
            project: "shop".into(),
            target: ResolvedTarget::Ephemeral
        }
    );
}

#[test]
fn box_paths_and_copies() {
    let remote = |r: &str, p: &str| {
        Location::Box(BoxPath {
            box_ref: parse_ref(r).unwrap(),
            path: p.into(),
        })
    };
    assert_eq!(
        parse_location("web-1:/srv/app.tar").unwrap(),
        remote("web-1", "/srv/app.tar")
    );
    assert_eq!(
        parse_location("shop:web:/etc/x").unwrap(),
        remote("shop:web", "/etc/x")
    );
    assert_eq!(
        parse_location("shop.web:/x").unwrap(),
        remote("shop.web", "/x")
    );
    assert_eq!(parse_location(".:/x").unwrap(), remote(".", "/x"));
    assert_eq!(parse_location("-:/x").unwrap(), remote("-", "/x"));
    assert_eq!(parse_location("shop:-:/x").unwrap(), remote("shop:-", "/x"));
    assert_eq!(
        parse_location("web:/a/../../etc/./passwd").unwrap(),
        remote("web", "/etc/passwd")
    );
    assert_eq!(
        parse_location("./app.tar").unwrap(),
        Location::Local("./app.tar".into())
    );
    assert_eq!(
        parse_location("/tmp/a:/b").unwrap(),
        Location::Local("/tmp/a:/b".into())
    );
    assert_eq!(
        parse_location("app.log").unwrap(),
        Location::Local("app.log".into())
    );
    run(
        "location",
        |a| parse_location(a).map(drop),
        &[
            (
                "web-1:app.log",
                Err(
                    "invalid box path \"web-1:app.log\": write it as box:/path (the :/ is required)",
                ),
                "invalid_path",
            ),
            (
                "web-1:",
                Err("invalid box path \"web-1:\": write it as box:/path (the :/ is required)"),
                "invalid_path",
            ),
            (
                "Web:/x",
                Err(&format!("invalid box name \"Web\": {BOX_RULE}")),
                "invalid_name",
            ),
            (
                "",
                Err("invalid path \"\": the path is empty"),
                "invalid_path",
            ),
        ],
    );
    assert_eq!(
        parse_copy("./app.tar", "web-1:/srv/app.tar").unwrap(),
        CopyDirection::Upload {
            local: "./app.tar".into(),
            remote: BoxPath {
                box_ref: parse_ref("web-1").unwrap(),
                path: "/srv/app.tar".into()
            }
        }
    );
    assert_eq!(
        parse_copy("web-1:/var/log/app.log", "./app.log").unwrap(),
        CopyDirection::Download {
            remote: BoxPath {
                box_ref: parse_ref("web-1").unwrap(),
                path: "/var/log/app.log".into()
            },
            local: "./app.log".into()
        }
    );
    let both = parse_copy("a:/x", "b:/y").unwrap_err();
    assert_eq!(
        both.to_string(),
        "exactly one side must be a box path (box:/path): both \"a:/x\" and \"b:/y\" are"
    );
    assert_eq!(both.code(), "invalid_path");
    assert_eq!(
        parse_copy("x", "y").unwrap_err().to_string(),
        "exactly one side must be a box path (box:/path): neither \"x\" nor \"y\" is"
    );
    assert_eq!(normalize_box_path("/../..").unwrap(), "/");
    assert_eq!(
        normalize_box_path("relative").unwrap_err().to_string(),
        "invalid path \"relative\": the path must be absolute"
    );
    assert_eq!(
        normalize_box_path("/a\0b").unwrap_err().to_string(),
        "invalid path \"/a\\0b\": the path contains a NUL byte"
    );
}

#[test]
fn project_names_from_directories() {
    assert_eq!(normalize_project_name("forkr").as_deref(), Some("forkr"));
    assert_eq!(
        normalize_project_name("My_Repo.rs").as_deref(),
        Some("my-repo-rs")
    );
    assert_eq!(normalize_project_name("--x--").as_deref(), Some("x"));
    assert_eq!(normalize_project_name("___"), None);
    assert_eq!(normalize_project_name("kube-stuff"), None);
    assert_eq!(
        normalize_project_name(&"a".repeat(100)).map(|s| s.len()),
        Some(63)
    );
}

#[test]
fn openapi_bounds_are_checked_in_rust_too() {
    use forkr_crds::{BoxResource, BoxSpec, DataMount};
    let mounts: Vec<DataMount> = (0..33)
        .map(|i| DataMount {
            volume: format!("v{i}"),
            mount_path: format!("/d{i}"),
            read_only: false,
        })
        .collect();
    let b = BoxResource::new(
        "web",
        BoxSpec {
            data: mounts,
            ..Default::default()
        },
    );
    assert_eq!(
        b.validate().unwrap_err().to_string(),
        "spec.data: too many data mounts: 33, at most 32"
    );
    let env = (0..257).map(|i| (format!("K{i}"), String::new())).collect();
    let b = BoxResource::new(
        "web",
        BoxSpec {
            env,
            ..Default::default()
        },
    );
    assert_eq!(
        b.validate().unwrap_err().to_string(),
        "spec.env: too many environment variables: 257, at most 256"
    );
    let long = format!("/{}", "a".repeat(1024));
    assert_eq!(
        validate_mount_path(&long).unwrap_err().to_string(),
        "mount path is too long: 1025 bytes, at most 1024"
    );
    assert_eq!(
        validate_request_id("a b").unwrap_err().to_string(),
        "invalid request id \"a b\": use 1-128 letters, digits, '.', '_', ':' or '-'"
    );
    validate_request_id("2026-11-23T10:00:00Z").unwrap();
    assert!(validate_upload_id("../x").is_err());
    assert!(validate_sha256(&"A".repeat(64)).is_err());
    validate_sha256(&"a".repeat(64)).unwrap();
}
