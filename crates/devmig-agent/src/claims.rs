//! Claims, persisted in SQLite (WAL). The database itself refuses a second
//! active claim on one device or for one migration id (partial unique indexes).
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

pub use devmig_api::{Claim, ClaimState};

/// A state as stored (anything unknown reads as orphaned: reported, never dropped).
fn state_from_db(s: &str) -> ClaimState {
    match s {
        "active" => ClaimState::Active,
        "released" => ClaimState::Released,
        "expired" => ClaimState::Expired,
        "completed" => ClaimState::Completed,
        _ => ClaimState::Orphaned,
    }
}

const SCHEMA_VERSION: i64 = 2;

/// The claim store.
#[derive(Debug)]
pub struct ClaimStore {
    db: Connection,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Claim> {
    Ok(Claim {
        id: r.get(0)?,
        migration_id: r.get(1)?,
        device: r.get(2)?,
        created_mdev: r.get(3)?,
        source_version: r.get(4)?,
        request: r.get(5)?,
        state: state_from_db(&r.get::<_, String>(6)?),
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        note: r.get(9)?,
    })
}

const COLUMNS: &str =
    "id, migration_id, device, created_mdev, source_version, request, state, created_at, expires_at, note";

impl ClaimStore {
    /// Opens (creating or migrating) `dir/claims.db`.
    pub fn open(dir: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(dir.join("claims.db"))?;
        // WAL: readers never block the writer; NORMAL: a committed claim survives a crash of the agent.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 1 {
            db.execute_batch(
                "CREATE TABLE claims(
                    id TEXT PRIMARY KEY,
                    migration_id TEXT NOT NULL,
                    device TEXT NOT NULL,
                    created_mdev INTEGER NOT NULL,
                    source_version TEXT NOT NULL,
                    request TEXT NOT NULL,
                    state TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    note TEXT);
                 CREATE UNIQUE INDEX claims_active_device ON claims(device) WHERE state = 'active';
                 CREATE UNIQUE INDEX claims_active_migration ON claims(migration_id) WHERE state = 'active';
                 CREATE INDEX claims_expiry ON claims(expires_at) WHERE state = 'active';",
            )?;
        }
        if version < 2 {
            // mdevs being created for a claim: written before `create`, deleted with the claim's
            // insert (one transaction), so a crash in between leaves a row that says which mdev
            // to remove at the next start.
            db.execute_batch("CREATE TABLE pending_mdevs(uuid TEXT PRIMARY KEY, created_at INTEGER NOT NULL);")?;
        }
        if version < SCHEMA_VERSION {
            db.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(ClaimStore { db })
    }

    /// Records that the mdev `uuid` is about to be created for a claim (before writing `create`).
    pub fn intend_mdev(&self, uuid: &str, now: i64) -> rusqlite::Result<()> {
        self.db.execute("INSERT INTO pending_mdevs(uuid, created_at) VALUES (?1, ?2)", params![uuid, now])?;
        Ok(())
    }

    /// Forgets a pending mdev (its claim was inserted, or it was removed, or never created).
    pub fn settle_mdev(&self, uuid: &str) -> rusqlite::Result<()> {
        self.db.execute("DELETE FROM pending_mdevs WHERE uuid = ?1", params![uuid])?;
        Ok(())
    }

    /// mdevs a claim was creating when the agent stopped.
    pub fn pending_mdevs(&self) -> rusqlite::Result<Vec<String>> {
        let mut st = self.db.prepare("SELECT uuid FROM pending_mdevs ORDER BY created_at")?;
        let rows = st.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    /// Inserts an active claim (settling its pending mdev in the same transaction). Fails
    /// (constraint) if the device or migration id already has one.
    pub fn insert(&self, c: &Claim) -> rusqlite::Result<()> {
        let tx = self.db.unchecked_transaction()?;
        tx.execute(
            &format!("INSERT INTO claims({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            params![
                c.id,
                c.migration_id,
                c.device,
                c.created_mdev,
                c.source_version,
                c.request,
                c.state.as_str(),
                c.created_at,
                c.expires_at,
                c.note
            ],
        )?;
        if c.created_mdev {
            tx.execute("DELETE FROM pending_mdevs WHERE uuid = ?1", params![c.device])?;
        }
        tx.commit()
    }

    /// The claim with `id`.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<Claim>> {
        self.db.query_row(&format!("SELECT {COLUMNS} FROM claims WHERE id = ?1"), [id], row).optional()
    }

    /// The active claim of a migration id.
    pub fn active_for_migration(&self, migration_id: &str) -> rusqlite::Result<Option<Claim>> {
        self.db
            .query_row(
                &format!("SELECT {COLUMNS} FROM claims WHERE migration_id = ?1 AND state = 'active'"),
                [migration_id],
                row,
            )
            .optional()
    }

    /// The active claim on a device.
    pub fn active_on_device(&self, device: &str) -> rusqlite::Result<Option<Claim>> {
        self.db
            .query_row(&format!("SELECT {COLUMNS} FROM claims WHERE device = ?1 AND state = 'active'"), [device], row)
            .optional()
    }

    /// Claims that are active or orphaned (what an operator must see).
    pub fn current(&self) -> rusqlite::Result<Vec<Claim>> {
        let mut st = self.db.prepare(&format!(
            "SELECT {COLUMNS} FROM claims WHERE state IN ('active', 'orphaned') ORDER BY created_at, id"
        ))?;
        st.query_map([], row)?.collect()
    }

    /// Active claims whose ttl has passed at `now`.
    pub fn due(&self, now: i64) -> rusqlite::Result<Vec<Claim>> {
        let mut st =
            self.db.prepare(&format!("SELECT {COLUMNS} FROM claims WHERE state = 'active' AND expires_at <= ?1"))?;
        st.query_map([now], row)?.collect()
    }

    /// Moves an active claim to `state`, with an optional note. False when it was not active.
    pub fn finish(&self, id: &str, state: ClaimState, note: Option<&str>) -> rusqlite::Result<bool> {
        let n = self.db.execute(
            "UPDATE claims SET state = ?2, note = COALESCE(?3, note) WHERE id = ?1 AND state = 'active'",
            params![id, state.as_str(), note],
        )?;
        Ok(n == 1)
    }

    /// Sets a claim's note.
    pub fn annotate(&self, id: &str, note: &str) -> rusqlite::Result<()> {
        self.db.execute("UPDATE claims SET note = ?2 WHERE id = ?1", params![id, note])?;
        Ok(())
    }

    /// Counts of claims by state.
    pub fn counts(&self) -> rusqlite::Result<Vec<(ClaimState, i64)>> {
        let mut st = self.db.prepare("SELECT state, COUNT(*) FROM claims GROUP BY state")?;
        st.query_map([], |r| Ok((state_from_db(&r.get::<_, String>(0)?), r.get(1)?)))?.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_store_gains_pending_mdevs_and_keeps_its_claims() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let db = Connection::open(dir.path().join("claims.db")).expect("open");
            db.execute_batch(
                "CREATE TABLE claims(id TEXT PRIMARY KEY, migration_id TEXT NOT NULL, device TEXT NOT NULL,
                    created_mdev INTEGER NOT NULL, source_version TEXT NOT NULL, request TEXT NOT NULL,
                    state TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, note TEXT);
                 INSERT INTO claims VALUES ('c1', 'm1', 'd1', 0, 'v', 'r', 'active', 1, 2, NULL);
                 PRAGMA user_version = 1;",
            )
            .expect("a version 1 store");
        }
        let store = ClaimStore::open(dir.path()).expect("migrated");
        assert_eq!(store.get("c1").expect("get").map(|c| c.device), Some("d1".to_string()));
        store.intend_mdev("u1", 5).expect("intend");
        store.intend_mdev("u2", 6).expect("intend");
        assert_eq!(store.pending_mdevs().expect("pending"), ["u1", "u2"]);
        // Storing the claim of a created mdev settles it in the same transaction.
        let claim = Claim {
            id: "c2".into(),
            migration_id: "m2".into(),
            device: "u1".into(),
            created_mdev: true,
            source_version: "v".into(),
            request: "r".into(),
            state: ClaimState::Active,
            created_at: 1,
            expires_at: 2,
            note: None,
        };
        store.insert(&claim).expect("insert");
        assert_eq!(store.pending_mdevs().expect("pending"), ["u2"]);
        let version: i64 = store.db.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }
}
