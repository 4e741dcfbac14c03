//! The SQLite store. Its three tables are exactly those of Lighthouse's
//! `slashing_protection.sqlite`, so a file can move between Lighthouse and a
//! cluster in either direction; our own metadata lives in a separate table.
//!
//! Every write commits with `synchronous = FULL` before the call returns, so
//! once a check-and-insert says "safe", the record survives a crash that
//! follows the signature. The rollback journal (not WAL) keeps the file
//! self-contained after every commit, so copying just the `.sqlite` file to
//! or from Lighthouse never loses records.

use crate::rules::*;
use dv_types::{Epoch, PublicKeyBytes, Root, Slot};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The file name Lighthouse uses, which we keep.
pub const DB_FILENAME: &str = "slashing_protection.sqlite";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS validators (
        id INTEGER PRIMARY KEY,
        public_key BLOB NOT NULL UNIQUE,
        enabled BOOL NOT NULL DEFAULT TRUE
    );
    CREATE TABLE IF NOT EXISTS signed_blocks (
        validator_id INTEGER NOT NULL,
        slot INTEGER NOT NULL,
        signing_root BLOB NOT NULL,
        FOREIGN KEY(validator_id) REFERENCES validators(id),
        UNIQUE (validator_id, slot)
    );
    CREATE TABLE IF NOT EXISTS signed_attestations (
        validator_id INTEGER,
        source_epoch INTEGER NOT NULL,
        target_epoch INTEGER NOT NULL,
        signing_root BLOB NOT NULL,
        FOREIGN KEY(validator_id) REFERENCES validators(id),
        UNIQUE (validator_id, target_epoch)
    );
    -- Ours: lets the surround and lower-bound checks seek by source epoch
    -- instead of scanning a long history. Invisible to Lighthouse's queries.
    CREATE INDEX IF NOT EXISTS dv_signed_attestations_source
        ON signed_attestations (validator_id, source_epoch);
    -- Ours: the shared tables store a root imported without one as zero,
    -- as Lighthouse does. A row listed here was signed with the all-zero
    -- root itself, so signing it again is the same data (EIP-3076 suite,
    -- complete mode); an unlisted zero stays unknown and matches nothing.
    CREATE TABLE IF NOT EXISTS dv_zero_root_blocks (
        validator_id INTEGER NOT NULL,
        slot INTEGER NOT NULL,
        PRIMARY KEY (validator_id, slot),
        FOREIGN KEY (validator_id, slot) REFERENCES signed_blocks (validator_id, slot)
            ON DELETE CASCADE
    );
    CREATE TABLE IF NOT EXISTS dv_zero_root_attestations (
        validator_id INTEGER NOT NULL,
        target_epoch INTEGER NOT NULL,
        PRIMARY KEY (validator_id, target_epoch),
        FOREIGN KEY (validator_id, target_epoch)
            REFERENCES signed_attestations (validator_id, target_epoch) ON DELETE CASCADE
    );
    CREATE TABLE IF NOT EXISTS dv_metadata (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
";

const GVR_KEY: &str = "genesis_validators_root";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("slashing protection database {path} is in use by another process (lock file {lock})")]
    InUse { path: PathBuf, lock: PathBuf },
    #[error("slashing protection database {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("slashing protection database {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A node's slashing protection database (one process at a time).
pub struct SlashingDatabase {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Held for the life of the database: an OS lock that dies with the process.
    _lock: File,
}

impl std::fmt::Debug for SlashingDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlashingDatabase({})", self.path.display())
    }
}

/// Statement-cached variants of `query_row` and `execute`: the rule checks run
/// the same few statements for every validator of a slot.
pub(crate) trait CachedStatements {
    fn query_row_cached<
        T,
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    >(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl CachedStatements for Connection {
    fn query_row_cached<
        T,
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    >(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

pub(crate) fn to_sql_int(value: u64) -> Result<i64, NotSafe> {
    i64::try_from(value).map_err(|_| NotSafe::ValueTooLarge(value))
}

pub(crate) fn from_sql_int(value: i64) -> u64 {
    // Rows we write are never negative; a foreign negative value reads as 0, the most restrictive bound.
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn root_from_blob(blob: Vec<u8>) -> Root {
    Root::try_from(blob.as_slice()).unwrap_or(Root::ZERO)
}

/// What a stored signing root is: a zero root is unknown (imported without
/// one) unless its row is marked as signed with the zero root itself.
fn same_recorded_root(
    conn: &Connection,
    stored: &Root,
    new: &Root,
    zero_marked: impl FnOnce(&Connection) -> rusqlite::Result<bool>,
) -> Result<bool, NotSafe> {
    if !stored.is_zero() {
        return Ok(stored == new);
    }
    Ok(new.is_zero() && zero_marked(conn)?)
}

fn row_exists(conn: &Connection, sql: &str, vid: i64, key: i64) -> rusqlite::Result<bool> {
    conn.query_row_cached(sql, params![vid, key], |_| Ok(()))
        .optional()
        .map(|row| row.is_some())
}

/// A signing root as it is recorded: `None` when the source did not know it.
pub(crate) type RecordedRoot = Option<Root>;

impl SlashingDatabase {
    /// Opens (creating if needed) the database at `path`, taking an exclusive
    /// process lock on `<path>.lock`, and checks the file's integrity.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let lock_path = path.with_extension("sqlite.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::InUse {
                    path: path.to_path_buf(),
                    lock: lock_path,
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let corrupt = |e: rusqlite::Error| OpenError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let conn = Connection::open(path).map_err(corrupt)?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -65536;",
        )
        .map_err(corrupt)?;
        let check: String = conn
            .query_row_cached("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(OpenError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("integrity check failed: {check}"),
            });
        }
        conn.execute_batch(SCHEMA).map_err(corrupt)?;
        for (table, columns) in [
            ("validators", &["id", "public_key", "enabled"][..]),
            ("signed_blocks", &["validator_id", "slot", "signing_root"]),
            (
                "signed_attestations",
                &[
                    "validator_id",
                    "source_epoch",
                    "target_epoch",
                    "signing_root",
                ],
            ),
        ] {
            let present = table_columns(&conn, table).map_err(corrupt)?;
            if let Some(missing) = columns.iter().find(|c| !present.iter().any(|p| p == *c)) {
                return Err(OpenError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("table {table} lacks column {missing}"),
                });
            }
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Opens `DIR/slashing_protection.sqlite`.
    pub fn open_in_dir(dir: &Path) -> Result<Self, OpenError> {
        Self::open(&dir.join(DB_FILENAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back).
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction and commits it durably.
    pub(crate) fn with_transaction<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Transaction) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.connection();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        dv_fault::reached(dv_fault::MID_SLASHING_TRANSACTION);
        tx.commit()?;
        Ok(value)
    }

    /// The genesis validators root the database belongs to, once known.
    pub fn genesis_validators_root(&self) -> Result<Option<Root>, NotSafe> {
        let conn = self.connection();
        Ok(conn
            .query_row_cached(
                "SELECT value FROM dv_metadata WHERE key = ?1",
                [GVR_KEY],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .optional()?
            .map(root_from_blob))
    }

    /// Records the chain's genesis validators root, or checks it against the one recorded.
    pub fn set_or_check_genesis_validators_root(&self, root: Root) -> Result<(), NotSafe> {
        self.with_transaction(|tx| set_or_check_gvr(tx, root))
    }

    /// Registers validators (by their validator public key, not a share key).
    pub fn register_validators(&self, pubkeys: &[PublicKeyBytes]) -> Result<(), NotSafe> {
        self.with_transaction(|tx| {
            for pk in pubkeys {
                register(tx, pk)?;
            }
            Ok(())
        })
    }

    /// Check only, for the consensus validity predicate: records nothing.
    pub fn check_block(
        &self,
        pubkey: &PublicKeyBytes,
        slot: Slot,
        signing_root: Root,
    ) -> Result<Safe, NotSafe> {
        let conn = self.connection();
        let vid = validator_id(&conn, pubkey)?;
        check_block(&conn, vid, slot, signing_root)
    }

    /// Checks and records a block proposal atomically and durably.
    pub fn check_and_insert_block(
        &self,
        pubkey: &PublicKeyBytes,
        slot: Slot,
        signing_root: Root,
    ) -> Result<Safe, NotSafe> {
        self.with_transaction(|tx| {
            let vid = validator_id(tx, pubkey)?;
            let safe = check_block(tx, vid, slot, signing_root)?;
            if safe == Safe::Valid {
                insert_block(tx, vid, slot, Some(signing_root))?;
            }
            Ok(safe)
        })
    }

    /// Check only, for the consensus validity predicate: records nothing.
    pub fn check_attestation(
        &self,
        pubkey: &PublicKeyBytes,
        source: Epoch,
        target: Epoch,
        signing_root: Root,
    ) -> Result<Safe, NotSafe> {
        let conn = self.connection();
        let vid = validator_id(&conn, pubkey)?;
        check_attestation(&conn, vid, source, target, signing_root)
    }

    /// Checks and records an attestation atomically and durably.
    pub fn check_and_insert_attestation(
        &self,
        pubkey: &PublicKeyBytes,
        source: Epoch,
        target: Epoch,
        signing_root: Root,
    ) -> Result<Safe, NotSafe> {
        self.check_and_insert_attestations(&[AttestationRequest {
            pubkey: *pubkey,
            source_epoch: source,
            target_epoch: target,
            signing_root,
        }])
        .map(|mut results| results.remove(0))?
    }

    /// Checks and records a whole slot's attestations in one durable
    /// transaction: one result per request, in order. A refused request
    /// records nothing; the others are recorded.
    pub fn check_and_insert_attestations(
        &self,
        requests: &[AttestationRequest],
    ) -> Result<Vec<Result<Safe, NotSafe>>, NotSafe> {
        self.with_transaction(|tx| {
            let mut results = Vec::with_capacity(requests.len());
            for r in requests {
                let outcome = validator_id(tx, &r.pubkey).and_then(|vid| {
                    let safe =
                        check_attestation(tx, vid, r.source_epoch, r.target_epoch, r.signing_root)?;
                    if safe == Safe::Valid {
                        insert_attestation(
                            tx,
                            vid,
                            r.source_epoch,
                            r.target_epoch,
                            Some(r.signing_root),
                        )?;
                    }
                    Ok(safe)
                });
                // A database failure aborts the whole transaction; a refusal is per request.
                if let Err(NotSafe::Database(e)) = &outcome {
                    return Err(NotSafe::Database(e.clone()));
                }
                results.push(outcome);
            }
            Ok(results)
        })
    }

    /// Drops history older than `epoch` (blocks before its first slot), keeping,
    /// per validator, one record at the highest pruned source/target and slot
    /// so everything the pruned records forbade stays forbidden.
    pub fn prune(&self, epoch: Epoch, slots_per_epoch: u64) -> Result<PruneSummary, NotSafe> {
        let first_slot = to_sql_int(epoch.saturating_mul(slots_per_epoch))?;
        let epoch = to_sql_int(epoch)?;
        self.with_transaction(|tx| {
            let mut summary = PruneSummary::default();
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM validators")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            for vid in ids {
                let (max_source, max_target): (Option<i64>, Option<i64>) = tx.query_row_cached(
                    "SELECT MAX(source_epoch), MAX(target_epoch) FROM signed_attestations
                     WHERE validator_id = ?1 AND target_epoch < ?2",
                    params![vid, epoch],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                if let (Some(max_source), Some(max_target)) = (max_source, max_target) {
                    summary.attestations += tx.execute_cached(
                        "DELETE FROM signed_attestations WHERE validator_id = ?1 AND target_epoch < ?2",
                        params![vid, max_target],
                    )?;
                    // The kept row carries the highest pruned source; its root becomes unknown if that changed it.
                    let changed = tx.execute_cached(
                        "UPDATE signed_attestations SET source_epoch = ?3, signing_root = ?4
                         WHERE validator_id = ?1 AND target_epoch = ?2 AND source_epoch < ?3",
                        params![vid, max_target, max_source, Root::ZERO.as_slice()],
                    )?;
                    if changed > 0 {
                        tx.execute_cached(
                            "DELETE FROM dv_zero_root_attestations
                             WHERE validator_id = ?1 AND target_epoch = ?2",
                            params![vid, max_target],
                        )?;
                    }
                }
                let max_slot: Option<i64> = tx.query_row_cached(
                    "SELECT MAX(slot) FROM signed_blocks WHERE validator_id = ?1 AND slot < ?2",
                    params![vid, first_slot],
                    |row| row.get(0),
                )?;
                if let Some(max_slot) = max_slot {
                    summary.blocks += tx.execute_cached(
                        "DELETE FROM signed_blocks WHERE validator_id = ?1 AND slot < ?2",
                        params![vid, max_slot],
                    )?;
                }
            }
            Ok(summary)
        })
    }
}

/// Rows removed by [`SlashingDatabase::prune`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneSummary {
    pub blocks: usize,
    pub attestations: usize,
}

/// One validator's attestation to check and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestationRequest {
    pub pubkey: PublicKeyBytes,
    pub source_epoch: Epoch,
    pub target_epoch: Epoch,
    pub signing_root: Root,
}

fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
    names.collect()
}

pub(crate) fn set_or_check_gvr(conn: &Connection, root: Root) -> Result<(), NotSafe> {
    let existing: Option<Vec<u8>> = conn
        .query_row_cached(
            "SELECT value FROM dv_metadata WHERE key = ?1",
            [GVR_KEY],
            |row| row.get(0),
        )
        .optional()?;
    match existing.map(root_from_blob) {
        Some(recorded) if recorded != root => Err(NotSafe::Database(format!(
            "genesis validators root {root} differs from the database's {recorded}"
        ))),
        Some(_) => Ok(()),
        None => {
            conn.execute_cached(
                "INSERT INTO dv_metadata (key, value) VALUES (?1, ?2)",
                params![GVR_KEY, root.as_slice()],
            )?;
            Ok(())
        }
    }
}

pub(crate) fn register(conn: &Connection, pubkey: &PublicKeyBytes) -> Result<i64, NotSafe> {
    conn.execute_cached(
        "INSERT OR IGNORE INTO validators (public_key) VALUES (?1)",
        [pubkey.0.as_slice()],
    )?;
    Ok(conn.query_row_cached(
        "SELECT id FROM validators WHERE public_key = ?1",
        [pubkey.0.as_slice()],
        |row| row.get(0),
    )?)
}

fn validator_id(conn: &Connection, pubkey: &PublicKeyBytes) -> Result<i64, NotSafe> {
    let row: Option<(i64, bool)> = conn
        .query_row_cached(
            "SELECT id, enabled FROM validators WHERE public_key = ?1",
            [pubkey.0.as_slice()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match row {
        None => Err(NotSafe::UnregisteredValidator(*pubkey)),
        Some((_, false)) => Err(NotSafe::DisabledValidator(*pubkey)),
        Some((id, true)) => Ok(id),
    }
}

pub(crate) fn check_block(
    conn: &Connection,
    vid: i64,
    slot: Slot,
    signing_root: Root,
) -> Result<Safe, NotSafe> {
    let slot_sql = to_sql_int(slot)?;
    let existing: Option<Vec<u8>> = conn
        .query_row_cached(
            "SELECT signing_root FROM signed_blocks WHERE validator_id = ?1 AND slot = ?2",
            params![vid, slot_sql],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(existing) = existing.map(root_from_blob) {
        let marked = |c: &Connection| {
            row_exists(
                c,
                "SELECT 1 FROM dv_zero_root_blocks WHERE validator_id = ?1 AND slot = ?2",
                vid,
                slot_sql,
            )
        };
        return if same_recorded_root(conn, &existing, &signing_root, marked)? {
            Ok(Safe::SameData)
        } else {
            Err(InvalidBlock::DoubleBlockProposal {
                slot,
                existing_root: existing,
            }
            .into())
        };
    }
    let min_slot: Option<i64> = conn.query_row_cached(
        "SELECT MIN(slot) FROM signed_blocks WHERE validator_id = ?1",
        [vid],
        |row| row.get(0),
    )?;
    if let Some(lower_bound) = min_slot.map(from_sql_int) {
        if slot < lower_bound {
            return Err(InvalidBlock::SlotViolatesLowerBound { slot, lower_bound }.into());
        }
    }
    Ok(Safe::Valid)
}

pub(crate) fn insert_block(
    conn: &Connection,
    vid: i64,
    slot: Slot,
    signing_root: RecordedRoot,
) -> Result<(), NotSafe> {
    let slot = to_sql_int(slot)?;
    conn.execute_cached(
        "INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?1, ?2, ?3)",
        params![vid, slot, signing_root.unwrap_or(Root::ZERO).as_slice()],
    )?;
    if signing_root.is_some_and(|root| root.is_zero()) {
        conn.execute_cached(
            "INSERT OR IGNORE INTO dv_zero_root_blocks (validator_id, slot) VALUES (?1, ?2)",
            params![vid, slot],
        )?;
    }
    Ok(())
}

fn attestation_row(row: &rusqlite::Row) -> rusqlite::Result<SignedAttestation> {
    Ok(SignedAttestation {
        source_epoch: from_sql_int(row.get(0)?),
        target_epoch: from_sql_int(row.get(1)?),
        signing_root: root_from_blob(row.get(2)?),
    })
}

pub(crate) fn check_attestation(
    conn: &Connection,
    vid: i64,
    source: Epoch,
    target: Epoch,
    signing_root: Root,
) -> Result<Safe, NotSafe> {
    if source > target {
        return Err(InvalidAttestation::SourceExceedsTarget {
            source_epoch: source,
            target_epoch: target,
        }
        .into());
    }
    let (source_sql, target_sql) = (to_sql_int(source)?, to_sql_int(target)?);
    let same_target: Option<SignedAttestation> = conn
        .query_row_cached(
            "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations
             WHERE validator_id = ?1 AND target_epoch = ?2",
            params![vid, target_sql],
            attestation_row,
        )
        .optional()?;
    if let Some(previous) = same_target {
        let marked = |c: &Connection| {
            row_exists(
                c,
                "SELECT 1 FROM dv_zero_root_attestations WHERE validator_id = ?1 AND target_epoch = ?2",
                vid,
                target_sql,
            )
        };
        return if same_recorded_root(conn, &previous.signing_root, &signing_root, marked)? {
            Ok(Safe::SameData)
        } else {
            Err(InvalidAttestation::DoubleVote { previous }.into())
        };
    }
    let surrounding: Option<SignedAttestation> = conn
        .query_row_cached(
            "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations
             WHERE validator_id = ?1 AND source_epoch < ?2 AND target_epoch > ?3 LIMIT 1",
            params![vid, source_sql, target_sql],
            attestation_row,
        )
        .optional()?;
    if let Some(previous) = surrounding {
        return Err(InvalidAttestation::PrevSurroundsNew { previous }.into());
    }
    let surrounded: Option<SignedAttestation> = conn
        .query_row_cached(
            "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations
             WHERE validator_id = ?1 AND source_epoch > ?2 AND target_epoch < ?3 LIMIT 1",
            params![vid, source_sql, target_sql],
            attestation_row,
        )
        .optional()?;
    if let Some(previous) = surrounded {
        return Err(InvalidAttestation::NewSurroundsPrev { previous }.into());
    }
    let (min_source, min_target): (Option<i64>, Option<i64>) = conn.query_row_cached(
        "SELECT MIN(source_epoch), MIN(target_epoch) FROM signed_attestations WHERE validator_id = ?1",
        [vid],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    if let Some(lower_bound) = min_source.map(from_sql_int) {
        if source < lower_bound {
            return Err(InvalidAttestation::SourceLessThanLowerBound {
                source_epoch: source,
                lower_bound,
            }
            .into());
        }
    }
    if let Some(lower_bound) = min_target.map(from_sql_int) {
        if target <= lower_bound {
            return Err(InvalidAttestation::TargetLessThanOrEqLowerBound {
                target_epoch: target,
                lower_bound,
            }
            .into());
        }
    }
    Ok(Safe::Valid)
}

pub(crate) fn insert_attestation(
    conn: &Connection,
    vid: i64,
    source: Epoch,
    target: Epoch,
    signing_root: RecordedRoot,
) -> Result<(), NotSafe> {
    let target = to_sql_int(target)?;
    conn.execute_cached(
        "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            vid,
            to_sql_int(source)?,
            target,
            signing_root.unwrap_or(Root::ZERO).as_slice()
        ],
    )?;
    if signing_root.is_some_and(|root| root.is_zero()) {
        conn.execute_cached(
            "INSERT OR IGNORE INTO dv_zero_root_attestations (validator_id, target_epoch)
             VALUES (?1, ?2)",
            params![vid, target],
        )?;
    }
    Ok(())
}
