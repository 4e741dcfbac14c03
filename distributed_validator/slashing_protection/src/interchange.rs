//! EIP-3076 slashing protection interchange, format version 5: import
//! (merging, in one transaction) and export (complete or minimal).

use crate::database::*;
use crate::rules::{NotSafe, Safe};
use dv_types::{Epoch, PublicKeyBytes, Root, Slot};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: &str = "5";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interchange {
    pub metadata: Metadata,
    pub data: Vec<ValidatorData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub interchange_format_version: String,
    pub genesis_validators_root: Root,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorData {
    pub pubkey: PublicKeyBytes,
    pub signed_blocks: Vec<InterchangeBlock>,
    pub signed_attestations: Vec<InterchangeAttestation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterchangeBlock {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_root: Option<Root>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterchangeAttestation {
    #[serde(with = "serde_utils::quoted_u64")]
    pub source_epoch: Epoch,
    #[serde(with = "serde_utils::quoted_u64")]
    pub target_epoch: Epoch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_root: Option<Root>,
}

#[derive(Debug, thiserror::Error)]
pub enum InterchangeError {
    #[error("malformed interchange JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported interchange format version {0:?} (5 is supported)")]
    UnsupportedVersion(String),
    #[error(
        "interchange is for genesis validators root {interchange}, the database for {database}"
    )]
    GenesisValidatorsRootMismatch { interchange: Root, database: Root },
    #[error("interchange entry {index} (validator {pubkey}) holds slashable data: {reason}; nothing was imported")]
    SlashableData {
        index: usize,
        pubkey: PublicKeyBytes,
        reason: String,
    },
    #[error("interchange entry {index}: {source}; nothing was imported")]
    Database { index: usize, source: NotSafe },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    NotSafe(#[from] NotSafe),
}

/// Whether an export carries every record or only the high-water marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Complete,
    /// Per validator the highest block slot and (highest source, highest target).
    Minimal,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub validators: usize,
    pub blocks_imported: usize,
    pub attestations_imported: usize,
    /// Records already present with the same data.
    pub duplicates_skipped: usize,
}

impl Interchange {
    pub fn from_json(text: &str) -> Result<Self, InterchangeError> {
        let interchange: Interchange = serde_json::from_str(text)?;
        if interchange.metadata.interchange_format_version != FORMAT_VERSION {
            return Err(InterchangeError::UnsupportedVersion(
                interchange.metadata.interchange_format_version,
            ));
        }
        Ok(interchange)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A root in a file or in the database's shared tables: zero says nothing
/// (EIP-3076 makes the root optional, and Lighthouse stores "none" as zero).
fn known_root(root: Option<Root>) -> RecordedRoot {
    root.filter(|root| !root.is_zero())
}

enum Merge {
    Insert,
    Duplicate,
}

/// Complete history may be older than what is on record, so the lower-bound
/// rules do not apply to imports; a record conflicting with another (double
/// vote, surround, two blocks at a slot, source > target) refuses the import.
fn merge_block(conn: &Connection, vid: i64, block: &InterchangeBlock) -> Result<Merge, String> {
    let root = block.signing_root.unwrap_or(Root::ZERO);
    let existing: Option<Vec<u8>> = conn
        .query_row_cached(
            "SELECT signing_root FROM signed_blocks WHERE validator_id = ?1 AND slot = ?2",
            params![vid, to_sql_int(block.slot).map_err(|e| e.to_string())?],
            |row| row.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e.to_string()),
        })?;
    match existing.map(root_from_blob) {
        None => Ok(Merge::Insert),
        Some(existing) if existing == root => Ok(Merge::Duplicate),
        Some(existing) => Err(format!(
            "two blocks at slot {} (signing roots {existing} and {root})",
            block.slot
        )),
    }
}

fn merge_attestation(
    conn: &Connection,
    vid: i64,
    att: &InterchangeAttestation,
) -> Result<Merge, String> {
    let root = att.signing_root.unwrap_or(Root::ZERO);
    match check_attestation_for_import(conn, vid, att.source_epoch, att.target_epoch, root) {
        Ok(Safe::Valid) => Ok(Merge::Insert),
        Ok(Safe::SameData) => Ok(Merge::Duplicate),
        Err(reason) => Err(reason),
    }
}

/// The attestation rules without the lower bounds, with identical unknown-root records counted as duplicates.
fn check_attestation_for_import(
    conn: &Connection,
    vid: i64,
    source: Epoch,
    target: Epoch,
    root: Root,
) -> Result<Safe, String> {
    match crate::database::check_attestation(conn, vid, source, target, root) {
        Ok(safe) => Ok(safe),
        Err(NotSafe::InvalidAttestation(crate::rules::InvalidAttestation::DoubleVote {
            previous,
        })) if previous.signing_root == root && previous.source_epoch == source => {
            Ok(Safe::SameData)
        }
        Err(NotSafe::InvalidAttestation(
            crate::rules::InvalidAttestation::SourceLessThanLowerBound { .. }
            | crate::rules::InvalidAttestation::TargetLessThanOrEqLowerBound { .. },
        )) => Ok(Safe::Valid),
        Err(e) => Err(e.to_string()),
    }
}

impl SlashingDatabase {
    /// Imports an interchange in one transaction: all of it or nothing.
    pub fn import_interchange(
        &self,
        interchange: &Interchange,
    ) -> Result<ImportSummary, InterchangeError> {
        let gvr = interchange.metadata.genesis_validators_root;
        if let Some(database) = self.genesis_validators_root()? {
            if database != gvr {
                return Err(InterchangeError::GenesisValidatorsRootMismatch {
                    interchange: gvr,
                    database,
                });
            }
        }
        self.with_transaction(|tx| {
            set_or_check_gvr(tx, gvr)?;
            let mut summary = ImportSummary::default();
            for (index, entry) in interchange.data.iter().enumerate() {
                let db_err = |source| InterchangeError::Database { index, source };
                let slashable = |reason| InterchangeError::SlashableData {
                    index,
                    pubkey: entry.pubkey,
                    reason,
                };
                let vid = register(tx, &entry.pubkey).map_err(db_err)?;
                summary.validators += 1;
                for block in &entry.signed_blocks {
                    match merge_block(tx, vid, block).map_err(slashable)? {
                        Merge::Duplicate => summary.duplicates_skipped += 1,
                        Merge::Insert => {
                            insert_block(tx, vid, block.slot, known_root(block.signing_root))
                                .map_err(db_err)?;
                            summary.blocks_imported += 1;
                        }
                    }
                }
                for att in &entry.signed_attestations {
                    match merge_attestation(tx, vid, att).map_err(slashable)? {
                        Merge::Duplicate => summary.duplicates_skipped += 1,
                        Merge::Insert => {
                            let root = known_root(att.signing_root);
                            insert_attestation(tx, vid, att.source_epoch, att.target_epoch, root)
                                .map_err(db_err)?;
                            summary.attestations_imported += 1;
                        }
                    }
                }
            }
            Ok(summary)
        })
    }

    /// Exports every registered validator (or only `only`), complete or minimal.
    pub fn export_interchange(
        &self,
        genesis_validators_root: Root,
        format: ExportFormat,
        only: Option<&[PublicKeyBytes]>,
    ) -> Result<Interchange, InterchangeError> {
        let conn = self.connection();
        let validators: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT id, public_key FROM validators ORDER BY id")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut data = Vec::new();
        for (vid, key) in validators {
            let Ok(pubkey) = PublicKeyBytes::from_slice(&key) else {
                return Err(NotSafe::Database(format!(
                    "validator row {vid} has a {}-byte public key",
                    key.len()
                ))
                .into());
            };
            if only.is_some_and(|keys| !keys.contains(&pubkey)) {
                continue;
            }
            let mut blocks: Vec<InterchangeBlock> = conn
                .prepare("SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ?1 ORDER BY slot")?
                .query_map([vid], |row| {
                    Ok(InterchangeBlock {
                        slot: from_sql_int(row.get(0)?),
                        signing_root: known_root(Some(root_from_blob(row.get(1)?))),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut attestations: Vec<InterchangeAttestation> = conn
                .prepare(
                    "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations
                     WHERE validator_id = ?1 ORDER BY target_epoch",
                )?
                .query_map([vid], |row| {
                    Ok(InterchangeAttestation {
                        source_epoch: from_sql_int(row.get(0)?),
                        target_epoch: from_sql_int(row.get(1)?),
                        signing_root: known_root(Some(root_from_blob(row.get(2)?))),
                    })
                })?
                .collect::<Result<_, _>>()?;
            if format == ExportFormat::Minimal {
                blocks = blocks
                    .last()
                    .map(|b| InterchangeBlock {
                        slot: b.slot,
                        signing_root: None,
                    })
                    .into_iter()
                    .collect();
                let max_source = attestations.iter().map(|a| a.source_epoch).max();
                let max_target = attestations.iter().map(|a| a.target_epoch).max();
                attestations = max_source
                    .zip(max_target)
                    .map(|(source_epoch, target_epoch)| InterchangeAttestation {
                        source_epoch,
                        target_epoch,
                        signing_root: None,
                    })
                    .into_iter()
                    .collect();
            }
            data.push(ValidatorData {
                pubkey,
                signed_blocks: blocks,
                signed_attestations: attestations,
            });
        }
        Ok(Interchange {
            metadata: Metadata {
                interchange_format_version: FORMAT_VERSION.to_string(),
                genesis_validators_root,
            },
            data,
        })
    }
}
