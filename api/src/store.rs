//! The local backend's state in SQLite: tokens, project users, and the same objects the CRDs
//! describe (stored as their JSON). One connection behind a mutex: every statement is short, and
//! SQLite serializes writers anyway.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::wire::UserView;

/// First UID of a project's users, as 002 says; UID = GID.
pub const FIRST_UID: u32 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored object is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    Missing(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Projects(Vec<String>),
}

impl Scope {
    pub fn allows(&self, project: &str) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Projects(p) => p.iter().any(|x| x == project),
        }
    }
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    hash     TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    admin    INTEGER NOT NULL,
    projects TEXT NOT NULL,
    created  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    project TEXT NOT NULL,
    name    TEXT NOT NULL,
    uid     INTEGER NOT NULL,
    shell   TEXT NOT NULL,
    PRIMARY KEY (project, name),
    UNIQUE (project, uid)
);
CREATE TABLE IF NOT EXISTS objects (
    kind    TEXT NOT NULL,
    project TEXT NOT NULL,
    name    TEXT NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (kind, project, name)
);
";

impl Store {
    /// Opens (or creates) the database. WAL keeps readers off the writer's back, and a kill -9
    /// loses nothing that was committed.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (statements are
        // atomic), so the poisoned guard is still good to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection, for the modules that keep their own tables in this database
    /// (`crate::ownership`'s base owners).
    pub(crate) fn connection(&self) -> MutexGuard<'_, Connection> {
        self.conn()
    }

    /// Records a token by the sha256 of its secret; the secret itself is never stored.
    pub fn add_token(&self, hash: &str, name: &str, scope: &Scope) -> StoreResult<()> {
        let (admin, projects) = match scope {
            Scope::Admin => (1, "[]".to_owned()),
            Scope::Projects(p) => (0, serde_json::to_string(p)?),
        };
        let now = jiff::Timestamp::now().to_string();
        self.conn().execute(
            "INSERT INTO tokens (hash, name, admin, projects, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash, name, admin, projects, now],
        )?;
        Ok(())
    }

    pub fn token_scope(&self, hash: &str) -> StoreResult<Option<Scope>> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT admin, projects FROM tokens WHERE hash = ?1",
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            None => None,
            Some((1, _)) => Some(Scope::Admin),
            Some((_, projects)) => Some(Scope::Projects(serde_json::from_str(&projects)?)),
        })
    }

    pub fn list_users(&self, project: &str) -> StoreResult<Vec<UserView>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, uid, shell FROM users WHERE project = ?1 ORDER BY uid")?;
        let rows = stmt.query_map([project], |r| {
            let name: String = r.get(0)?;
            let uid: u32 = r.get(1)?;
            Ok(UserView {
                home: format!("/home/{name}"),
                name,
                uid,
                gid: uid,
                shell: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn get_user(&self, project: &str, name: &str) -> StoreResult<Option<UserView>> {
        Ok(self
            .list_users(project)?
            .into_iter()
            .find(|u| u.name == name))
    }

    /// Adds a user with the next UID of the project: max(existing) + 1, from 20000. The read and
    /// the insert share one immediate transaction, so two creates never take the same UID.
    pub fn create_user(&self, project: &str, name: &str, shell: &str) -> StoreResult<UserView> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE project = ?1 AND name = ?2)",
            params![project, name],
            |r| r.get(0),
        )?;
        if exists {
            return Err(StoreError::Exists(format!("user {name:?}")));
        }
        let max: Option<u32> = tx.query_row(
            "SELECT MAX(uid) FROM users WHERE project = ?1",
            [project],
            |r| r.get(0),
        )?;
        let uid = max.map_or(FIRST_UID, |m| m.saturating_add(1).max(FIRST_UID));
        tx.execute(
            "INSERT INTO users (project, name, uid, shell) VALUES (?1, ?2, ?3, ?4)",
            params![project, name, uid, shell],
        )?;
        tx.commit()?;
        Ok(UserView {
            name: name.to_owned(),
            uid,
            gid: uid,
            home: format!("/home/{name}"),
            shell: shell.to_owned(),
        })
    }

    pub fn update_user(&self, project: &str, name: &str, shell: &str) -> StoreResult<UserView> {
        let n = self.conn().execute(
            "UPDATE users SET shell = ?3 WHERE project = ?1 AND name = ?2",
            params![project, name, shell],
        )?;
        if n == 0 {
            return Err(StoreError::Missing(format!("user {name:?}")));
        }
        self.get_user(project, name)?
            .ok_or_else(|| StoreError::Missing(format!("user {name:?}")))
    }

    /// Removes a user. Deleting one that is not there is not an error: delete is idempotent.
    pub fn delete_user(&self, project: &str, name: &str) -> StoreResult<bool> {
        let n = self.conn().execute(
            "DELETE FROM users WHERE project = ?1 AND name = ?2",
            params![project, name],
        )?;
        Ok(n > 0)
    }

    /// Stores an object (a CRD type) as JSON, replacing any previous version.
    pub fn put<T: serde::Serialize>(
        &self,
        kind: &str,
        project: &str,
        name: &str,
        obj: &T,
    ) -> StoreResult<()> {
        let body = serde_json::to_string(obj)?;
        self.conn().execute(
            "INSERT INTO objects (kind, project, name, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (kind, project, name) DO UPDATE SET body = excluded.body",
            params![kind, project, name, body],
        )?;
        Ok(())
    }

    /// Stores an object only if none of that name exists.
    pub fn insert<T: serde::Serialize>(
        &self,
        kind: &str,
        project: &str,
        name: &str,
        obj: &T,
    ) -> StoreResult<()> {
        let body = serde_json::to_string(obj)?;
        let n = self.conn().execute(
            "INSERT INTO objects (kind, project, name, body) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![kind, project, name, body],
        )?;
        if n == 0 {
            return Err(StoreError::Exists(format!("{kind} {name:?}")));
        }
        Ok(())
    }

    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        project: &str,
        name: &str,
    ) -> StoreResult<Option<T>> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM objects WHERE kind = ?1 AND project = ?2 AND name = ?3",
                params![kind, project, name],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match body {
            Some(b) => Some(serde_json::from_str(&b)?),
            None => None,
        })
    }

    pub fn list<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        project: &str,
    ) -> StoreResult<Vec<T>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT body FROM objects WHERE kind = ?1 AND project = ?2 ORDER BY name")?;
        let bodies = stmt.query_map(params![kind, project], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for b in bodies {
            out.push(serde_json::from_str(&b?)?);
        }
        Ok(out)
    }

    /// Every object of a kind, with its project: startup scans (unfinished deletes, hosts).
    pub fn list_all<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
    ) -> StoreResult<Vec<(String, T)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT project, body FROM objects WHERE kind = ?1 ORDER BY project, name")?;
        let rows = stmt.query_map(params![kind], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (project, body) = row?;
            out.push((project, serde_json::from_str(&body)?));
        }
        Ok(out)
    }

    pub fn remove(&self, kind: &str, project: &str, name: &str) -> StoreResult<bool> {
        let n = self.conn().execute(
            "DELETE FROM objects WHERE kind = ?1 AND project = ?2 AND name = ?3",
            params![kind, project, name],
        )?;
        Ok(n > 0)
    }
}
