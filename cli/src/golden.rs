//! Golden outputs: the tables and JSON 4kr prints for fixed API answers, compared byte for byte
//! with the files under cli/tests/golden/. `FORKR_UPDATE_GOLDEN=1` rewrites the files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use forkr_api_proto::wire::*;

use crate::commands::{bases, boxes, snapshots, users, volumes};
use crate::output;

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("FORKR_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (FORKR_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

fn web() -> BoxView {
    BoxView {
        name: "web".into(),
        project: "shop".into(),
        status: "running".into(),
        base: Some("box-base".into()),
        fork_of: None,
        url: "https://web.shop.forkr.example.com".into(),
        port: Some(8080),
        created: Some("2026-11-23T10:00:00Z".into()),
        started: Some("2026-11-23T10:00:01Z".into()),
        stopped: None,
        published: vec!["www.example.com".into(), "example.com".into()],
        tags: BTreeMap::from([("box.ui".into(), "main".into())]),
        data: vec![
            DataMountView {
                volume: "pgdata".into(),
                mount_path: "/var/lib/postgresql/data".into(),
                read_only: false,
            },
            DataMountView {
                volume: "assets".into(),
                mount_path: "/srv/assets".into(),
                read_only: true,
            },
        ],
        cpus: Some(0.5),
        ram_mb: Some(2048),
        storage_gb: Some(1.5),
        ip: Some("10.88.0.2".into()),
        ephemeral: false,
        message: None,
    }
}

fn worker() -> BoxView {
    BoxView {
        name: "queue-worker-2".into(),
        status: "stopped".into(),
        base: None,
        url: "https://queue-worker-2.shop.forkr.example.com".into(),
        port: None,
        started: None,
        stopped: Some("2026-11-23T11:00:00Z".into()),
        published: vec![],
        tags: BTreeMap::new(),
        data: vec![],
        cpus: None,
        ram_mb: None,
        storage_gb: None,
        ip: None,
        message: Some("stopped by the user".into()),
        ..web()
    }
}

#[test]
fn boxes() {
    check("list.txt", &boxes::list_table(&[web(), worker()]));
    check("list-empty.txt", &boxes::list_table(&[]));
    check("list.json", &output::json(&vec![web(), worker()]).unwrap());
    check("show.txt", &boxes::show_text(&web()));
    check("show-stopped.txt", &boxes::show_text(&worker()));
    check("show.json", &output::json(&web()).unwrap());
    let published = Published {
        host: "www.example.com".into(),
    };
    check("publish.json", &output::json(&published).unwrap());
    let removed = Unpublished {
        hosts: vec!["www.example.com".into(), "example.com".into()],
    };
    check("unpublish.json", &output::json(&removed).unwrap());
}

#[test]
fn delete_reports() {
    let results = vec![
        output::Deleted::new("web".into(), Ok(())),
        output::Deleted::new("db".into(), Err("box is running".into())),
    ];
    let text = output::delete_report(&results, false).unwrap_err();
    check("delete.txt", &text.to_string());
    let json = output::delete_report(&results, true).unwrap_err();
    check("delete.json", &json.to_string());
    let ok = output::delete_report(&results[..1], true).unwrap();
    check("delete-ok.json", &ok);
}

fn copies() -> Vec<SnapshotView> {
    vec![
        SnapshotView {
            name: "v0".into(),
            size: 16384,
            created: "2026-11-23T10:05:00Z".into(),
            description: None,
        },
        SnapshotView {
            name: "before-upgrade".into(),
            size: 3 << 30,
            created: "2026-11-23T10:06:00Z".into(),
            description: Some("Clean state before the Postgres 17 upgrade".into()),
        },
    ]
}

#[test]
fn snapshots_ports_and_users() {
    check("snapshot-list.txt", &output::snapshot_table(&copies()));
    let ports = vec![
        PortView {
            port: 22,
            address: "0.0.0.0".into(),
        },
        PortView {
            port: 8080,
            address: "::".into(),
        },
    ];
    check("port-list.txt", &snapshots::ports_table(&ports));
    check("port-list.json", &output::json(&ports).unwrap());
    let people = vec![
        UserView {
            name: "alice".into(),
            uid: 20000,
            gid: 20000,
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
        },
        UserView {
            name: "build-bot".into(),
            uid: 20001,
            gid: 20001,
            home: "/home/build-bot".into(),
            shell: "/bin/sh".into(),
        },
    ];
    check("user-list.txt", &users::table(&people));
    check("user-list.json", &output::json(&people).unwrap());
}

#[test]
fn volumes_and_bases() {
    let vols = vec![
        VolumeView {
            name: "pgdata".into(),
            project: "shop".into(),
            size: 123 << 20,
            limit: Some("10Gi".into()),
            created: "2026-11-23T09:00:00Z".into(),
        },
        VolumeView {
            name: "cache".into(),
            project: "shop".into(),
            size: 0,
            limit: None,
            created: "2026-11-23T09:30:00Z".into(),
        },
    ];
    check("volume-list.txt", &volumes::table(&vols));
    check("volume-checkpoints.txt", &output::snapshot_table(&copies()));
    let list = vec![
        BaseSummaryView {
            name: "box-base".into(),
            version: "box-base".into(),
            size: 412 << 20,
            created: "2026-11-20T08:00:00Z".into(),
        },
        BaseSummaryView {
            name: "dev-base".into(),
            version: "dev-base-v20261122120000".into(),
            size: 1536 << 20,
            created: "2026-11-22T12:00:00Z".into(),
        },
    ];
    check("base-list.txt", &bases::list_table(&list));
    let shown = BaseDetailsView {
        name: "dev-base".into(),
        latest: "dev-base-v20261122120000".into(),
        version_count: 2,
        versions: vec![
            BaseVersionView {
                version: "dev-base-v20261122120000".into(),
                kind: "build".into(),
                tag: Some("3b1f9c2a8d4e5f60718293a4b5c6d7e8f9011223344556677889900aabbccdd".into()),
                builder: Some("docker".into()),
                parent: None,
                size: 1536 << 20,
                created: "2026-11-22T12:00:00Z".into(),
            },
            BaseVersionView {
                version: "dev-base".into(),
                kind: "save".into(),
                tag: None,
                builder: None,
                parent: Some("box-base".into()),
                size: 700 << 20,
                created: "2026-11-21T12:00:00Z".into(),
            },
        ],
    };
    check("base-show.txt", &bases::show_text(&shown));
}
