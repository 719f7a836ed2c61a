//! Operations from many threads at once keep the pool's promises.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too

mod common;

use std::collections::BTreeSet;

use common::{TestPool, rootfs_tar};
use forkr_node_agent::pool::import::ImportOptions;
use forkr_node_agent::{Shelf, Subject};

#[test]
fn parallel_checkpoints_get_distinct_names_while_imports_run() {
    let t = TestPool::new();
    t.base("box-base");
    t.pool.create_root("p", "web", "box-base").unwrap();
    let web = Subject::Root {
        project: "p",
        name: "web",
    };
    let names = std::thread::scope(|s| {
        let importer = s.spawn(|| {
            for i in 0..3 {
                let tar = rootfs_tar(&[("etc/i", format!("{i}").as_bytes())]);
                t.pool
                    .import_base("busy", &tar[..], &ImportOptions::default())
                    .unwrap();
            }
        });
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let pool = &t.pool;
                s.spawn(move || {
                    let mut made = Vec::new();
                    for _ in 0..5 {
                        made.push(
                            pool.create_checkpoint(web, Shelf::Checkpoints, None, None, None)
                                .unwrap(),
                        );
                    }
                    pool.fork_root("p", "web", "p", &format!("fork{w}"), &[])
                        .unwrap();
                    made
                })
            })
            .collect();
        importer.join().unwrap();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });
    let unique: BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 20, "{names:?}");
    assert_eq!(
        t.pool
            .list_checkpoints(web, Shelf::Checkpoints)
            .unwrap()
            .len(),
        20
    );
    assert_eq!(t.pool.show_base("busy", None).unwrap().version_count, 3);
    assert_eq!(t.pool.list_roots("p").unwrap().len(), 5);
    assert!(t.debris().is_empty());
}
