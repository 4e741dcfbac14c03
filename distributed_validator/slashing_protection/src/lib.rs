//! Slashing protection for the distributed validator: a SQLite store in
//! Lighthouse's file format, Lighthouse's signing rules, and EIP-3076
//! interchange. Keyed by the validator public key, never a share key: every
//! node of a cluster protects the validator as a whole.

pub mod database;
pub mod interchange;
pub mod rules;

pub use database::{AttestationRequest, OpenError, PruneSummary, SlashingDatabase, DB_FILENAME};
pub use interchange::{ExportFormat, ImportSummary, Interchange, InterchangeError};
pub use rules::{InvalidAttestation, InvalidBlock, NotSafe, Safe, SignedAttestation};
