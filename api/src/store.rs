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
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// Makes `dir` (and any missing parents) and leaves `dir` itself mode 0700, whatever the umask
/// and whatever an older install left: the data directory holds the database, the pool and
/// box state, none of it for other users of the host. Parents that exist are not touched.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        tracing::warn!(path = %dir.display(), from = format!("{mode:o}"), "made the data directory 0700");
    }
    Ok(())
}

/// Leaves `path` mode 0600: created so when `create` and it is missing (O_CREAT with the mode,
/// so it is never open to others, not even for a moment), tightened when it is more open.
fn private_file(path: &Path, create: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if create {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
    }
    let mode = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => m.permissions().mode() & 0o7777,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        tracing::warn!(path = %path.display(), from = format!("{mode:o}"), "made the database file 0600");
    }
    Ok(())
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

/// A token as the store knows it: everything but its secret and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The first 12 hex digits of the hash: stable, not secret, unique among tokens.
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339; none: never expires.
    pub expires: Option<String>,
    /// RFC 3339; the middleware updates it at most once a minute.
    pub last_used: Option<String>,
}

impl TokenRecord {
    /// Whether the token has expired at `now`. An expiry that does not parse counts as
    /// expired: a token must never outlive a limit because the limit was garbled.
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        self.expires
            .as_deref()
            .is_some_and(|e| e.parse::<jiff::Timestamp>().map_or(true, |e| e <= now))
    }

    /// Whether `last_used` is missing or older than `every`, so that it is due an update.
    pub fn use_due(&self, now: jiff::Timestamp, every: std::time::Duration) -> bool {
        let Some(last) = self.last_used.as_deref() else {
            return true;
        };
        let Ok(last) = last.parse::<jiff::Timestamp>() else {
            return true;
        };
        let every = jiff::SignedDuration::try_from(every).unwrap_or(jiff::SignedDuration::MAX);
        now.duration_since(last) >= every
    }
}

/// RFC 3339 to the second: token times are for people, and nanoseconds only clutter them.
/// Truncated, so that an expiry never moves later.
fn to_second(t: jiff::Timestamp) -> String {
    let down = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    t.round(down).unwrap_or(t).to_string()
}

/// A token's id: the first 12 hex digits of its hash.
pub fn token_id(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn is_token_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

const TOKEN_COLUMNS: &str = "hash, name, admin, projects, created, expires, last_used";

type TokenRow = (
    String,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(
        (hash, name, admin, projects, created, expires, last_used): TokenRow,
    ) -> StoreResult<TokenRecord> {
        let scope = if admin == 1 {
            Scope::Admin
        } else {
            Scope::Projects(serde_json::from_str(&projects)?)
        };
        Ok(TokenRecord {
            id: token_id(&hash),
            name,
            scope,
            created,
            expires,
            last_used,
        })
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
    created  TEXT NOT NULL,
    expires  TEXT,
    last_used TEXT
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
    ///
    /// The database holds token hashes and box environments (secrets), so it and its `-wal`
    /// and `-shm` are 0600: created so, and tightened when an older install left them open.
    pub fn open(path: &Path) -> StoreResult<Store> {
        private_file(path, true).map_err(|e| StoreError::Io(path.display().to_string(), e))?;
        Self::tighten_journal(path)?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Self::migrate_tokens(&conn)?;
        // SQLite gives a new -wal and -shm the database's mode; these catch ones an older
        // version made.
        Self::tighten_journal(path)?;
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
        self.add_token_expiring(hash, name, scope, None).map(drop)
    }

    /// Records a token that stops working at `expires`, and returns its record. Refuses with
    /// `Exists` when another token already has the same id (the hash's first 12 hex digits),
    /// so an id always names one token.
    pub fn add_token_expiring(
        &self,
        hash: &str,
        name: &str,
        scope: &Scope,
        expires: Option<jiff::Timestamp>,
    ) -> StoreResult<TokenRecord> {
        let (admin, projects) = match scope {
            Scope::Admin => (1, "[]".to_owned()),
            Scope::Projects(p) => (0, serde_json::to_string(p)?),
        };
        let id = token_id(hash);
        let now = to_second(jiff::Timestamp::now());
        let expires = expires.map(to_second);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM tokens WHERE substr(hash, 1, 12) = ?1)",
            [&id],
            |r| r.get(0),
        )?;
        if taken {
            return Err(StoreError::Exists(format!("token {id}")));
        }
        tx.execute(
            "INSERT INTO tokens (hash, name, admin, projects, created, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![hash, name, admin, projects, now, expires],
        )?;
        tx.commit()?;
        Ok(TokenRecord {
            id,
            name: name.to_owned(),
            scope: scope.clone(),
            created: now,
            expires,
            last_used: None,
        })
    }

    pub fn token_scope(&self, hash: &str) -> StoreResult<Option<Scope>> {
        Ok(self.token(hash)?.map(|t| t.scope))
    }

    /// The token with this sha256. The auth middleware calls this on every request: one
    /// primary-key lookup through a cached statement.
    pub fn token(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"
        ))?;
        let row = stmt.query_row([hash], token_row).optional()?;
        row.map(TokenRecord::try_from).transpose()
    }

    /// Every token, oldest first; never their hashes.
    pub fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created, rowid"
        ))?;
        let rows = stmt.query_map([], token_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(TokenRecord::try_from(row?)?);
        }
        Ok(out)
    }

    /// Removes the token with this id: it is refused from the next request on.
    pub fn revoke_token(&self, id: &str) -> StoreResult<TokenRecord> {
        let missing = || StoreError::Missing(format!("token {id:?}"));
        if !is_token_id(id) {
            return Err(missing());
        }
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = tx
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE substr(hash, 1, 12) = ?1"),
                [id],
                token_row,
            )
            .optional()?
            .ok_or_else(missing)?;
        tx.execute("DELETE FROM tokens WHERE substr(hash, 1, 12) = ?1", [id])?;
        tx.commit()?;
        TokenRecord::try_from(row)
    }

    /// Records that the token was used at `now`.
    pub fn touch_token(&self, hash: &str, now: jiff::Timestamp) -> StoreResult<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("UPDATE tokens SET last_used = ?2 WHERE hash = ?1")?;
        stmt.execute(params![hash, to_second(now)])?;
        Ok(())
    }

    fn tighten_journal(db: &Path) -> StoreResult<()> {
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            private_file(&p, false).map_err(|e| StoreError::Io(p.display().to_string(), e))?;
        }
        Ok(())
    }

    /// Adds the token columns that databases made before token lifecycles lack.
    fn migrate_tokens(conn: &Connection) -> StoreResult<()> {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('tokens')")?;
        let have: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for column in ["expires", "last_used"] {
            if !have.iter().any(|c| c == column) {
                conn.execute_batch(&format!("ALTER TABLE tokens ADD COLUMN {column} TEXT"))?;
            }
        }
        Ok(())
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

#[cfg(test)]
mod token_tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn tokens_are_listed_expire_and_are_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("forkr.db")).unwrap();
        let hash = "ab".repeat(32);
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
        let made = store
            .add_token_expiring(
                &hash,
                "ci",
                &Scope::Projects(vec!["shop".into()]),
                Some(soon),
            )
            .unwrap();
        assert_eq!(made.id, "abababababab");
        store
            .add_token(&"cd".repeat(32), "admin", &Scope::Admin)
            .unwrap();
        // An id names one token: a hash with the same first 12 digits is refused.
        let twin = format!("{}{}", "ab".repeat(6), "00".repeat(26));
        assert!(matches!(
            store.add_token(&twin, "twin", &Scope::Admin),
            Err(StoreError::Exists(_))
        ));
        let listed = store.list_tokens().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(store.token(&hash).unwrap().unwrap(), made);
        assert!(!made.expired(jiff::Timestamp::now()));
        assert!(made.expired(soon));
        // last_used is due when missing, then not again within the minute.
        let now = jiff::Timestamp::now();
        assert!(made.use_due(now, Duration::from_secs(60)));
        store.touch_token(&hash, now).unwrap();
        let used = store.token(&hash).unwrap().unwrap();
        assert!(used.last_used.is_some());
        assert!(!used.use_due(
            now + jiff::SignedDuration::from_secs(30),
            Duration::from_secs(60)
        ));
        assert!(used.use_due(
            now + jiff::SignedDuration::from_secs(61),
            Duration::from_secs(60)
        ));
        // Revoking by id removes it; an unknown or malformed id is not found.
        assert_eq!(store.revoke_token("abababababab").unwrap().name, "ci");
        assert_eq!(store.token(&hash).unwrap(), None);
        for bad in ["abababababab", "ABABABABABAB", "%", ""] {
            assert!(
                matches!(store.revoke_token(bad), Err(StoreError::Missing(_))),
                "{bad}"
            );
        }
        // A garbled expiry counts as expired.
        let garbled = TokenRecord {
            expires: Some("soon".into()),
            ..used
        };
        assert!(garbled.expired(jiff::Timestamp::now()));
    }

    #[test]
    fn a_database_from_before_token_lifecycles_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forkr.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE tokens (hash TEXT PRIMARY KEY, name TEXT NOT NULL, admin INTEGER NOT NULL,
                                  projects TEXT NOT NULL, created TEXT NOT NULL);
             INSERT INTO tokens VALUES ('0123456789abcdef', 'old', 1, '[]', '2024-01-01T00:00:00Z');",
        )
        .unwrap();
        drop(old);
        let store = Store::open(&path).unwrap();
        let t = store.token("0123456789abcdef").unwrap().unwrap();
        assert_eq!(
            (t.id.as_str(), t.expires, t.last_used),
            ("0123456789ab", None, None)
        );
    }

    /// The auth middleware looks a token up on every request. Not a timed assertion (timings
    /// vary with the machine): the figure is printed, for the record.
    #[test]
    fn a_token_lookup_is_cheap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("forkr.db")).unwrap();
        for i in 0..1000 {
            let hash = crate::auth::hash_token(&i.to_string());
            store.add_token(&hash, "t", &Scope::Admin).unwrap();
        }
        let hash = crate::auth::hash_token("500");
        let n = 10_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(store.token(&hash).unwrap().is_some());
        }
        let per = start.elapsed() / n;
        println!("token lookup: {per:?} each over {n} lookups among 1000 tokens");
    }

    #[test]
    fn the_data_dir_and_database_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        // Fresh: made 0700 and 0600, whatever the umask (022 would give 0755 and 0644).
        let data = tmp.path().join("fresh/data");
        private_dir(&data).unwrap();
        let db = data.join("forkr.db");
        let store = Store::open(&db).unwrap();
        store
            .add_token(&"ef".repeat(32), "t", &Scope::Admin)
            .unwrap();
        assert_eq!(mode(&data), 0o700);
        for f in ["forkr.db", "forkr.db-wal", "forkr.db-shm"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
        drop(store);
        // An older install's 0755 directory and 0644 files are tightened.
        let data = tmp.path().join("old");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = data.join("forkr.db");
        drop(Store::open(&db).unwrap());
        for f in ["forkr.db", "forkr.db-wal", "forkr.db-shm"] {
            let p = data.join(f);
            if !p.exists() {
                std::fs::write(&p, b"").unwrap();
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        private_dir(&data).unwrap();
        let store = Store::open(&db).unwrap();
        store
            .add_token(&"12".repeat(32), "t", &Scope::Admin)
            .unwrap();
        assert_eq!(mode(&data), 0o700);
        for f in ["forkr.db", "forkr.db-wal", "forkr.db-shm"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
}
