//! Which project owns each base name. Bases have no project (003): every project lists them and
//! boots from them. Writes are another matter, because a new version of a base is what the
//! next box of everyone who names it boots. So the first import or save of a name by a project
//! token claims the name for that project, in the gateway's SQLite (both backends keep tokens
//! there too); names nobody claimed (`box-base`, whatever an admin made) are written only by
//! admins. The rule itself is in `crate::authz`.

use rusqlite::{OptionalExtension, params};

use crate::store::{Store, StoreResult};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS base_owners (
    name    TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    created TEXT NOT NULL
);
";

/// Ownership is per family (`forkr_crds::base::family`), so a version cannot be written or
/// deleted by naming it instead of its alias.
pub use forkr_crds::base::family;

/// The project that owns base family `name`, if one claimed it.
pub fn owner(store: &Store, name: &str) -> StoreResult<Option<String>> {
    let conn = store.connection();
    conn.execute_batch(SCHEMA)?;
    Ok(conn
        .query_row(
            "SELECT project FROM base_owners WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?)
}

/// Claims base family `name` for `project` unless a project has it already, in one statement,
/// so two first imports cannot both win. Returns the owner afterwards and whether this call
/// made the claim.
pub fn claim(store: &Store, name: &str, project: &str) -> StoreResult<(String, bool)> {
    let conn = store.connection();
    conn.execute_batch(SCHEMA)?;
    let now = jiff::Timestamp::now().to_string();
    let made = conn.execute(
        "INSERT INTO base_owners (name, project, created) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO NOTHING",
        params![name, project, now],
    )? == 1;
    let owner: String = conn.query_row(
        "SELECT project FROM base_owners WHERE name = ?1",
        [name],
        |r| r.get(0),
    )?;
    Ok((owner, made))
}

/// Gives up a claim this request made, when the write it was for failed and left no base:
/// a failed first import must not keep the name from everyone else.
pub fn release(store: &Store, name: &str, project: &str) -> StoreResult<()> {
    let conn = store.connection();
    conn.execute_batch(SCHEMA)?;
    conn.execute(
        "DELETE FROM base_owners WHERE name = ?1 AND project = ?2",
        params![name, project],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_tags_belong_to_their_alias() {
        assert_eq!(family("box-base"), "box-base");
        assert_eq!(family("box-base:3fa9"), "box-base");
        assert_eq!(family("box-base-v20261123150000"), "box-base");
        assert_eq!(family("my-very-long-base-name"), "my-very-long-base-name");
        assert_eq!(family("-v20261123150000"), "-v20261123150000");
    }

    #[test]
    fn the_first_claim_wins_and_only_its_owner_releases_it() {
        let path = std::env::temp_dir().join(format!(
            "forkr-base-owners-{}-{}.db",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        ));
        let store = Store::open(&path).unwrap();
        assert_eq!(owner(&store, "web").unwrap(), None);
        assert_eq!(claim(&store, "web", "shop").unwrap(), ("shop".into(), true));
        assert_eq!(
            claim(&store, "web", "other").unwrap(),
            ("shop".into(), false)
        );
        release(&store, "web", "other").unwrap();
        assert_eq!(owner(&store, "web").unwrap().as_deref(), Some("shop"));
        release(&store, "web", "shop").unwrap();
        assert_eq!(owner(&store, "web").unwrap(), None);
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
