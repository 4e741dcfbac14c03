//! Consensus-layer types for the distributed validator.
//!
//! Containers serialise to SSZ (`ethereum_ssz`), hash with `tree_hash`, and
//! speak Beacon API JSON (quoted integers, `0x`-hex bytes). Containers whose
//! list limits depend on the preset are generic over [`Preset`].

pub mod attestation;
pub mod block;
pub mod chain_spec;
pub mod containers;
pub mod execution;
pub mod fork;
pub mod preset;
pub mod primitives;
pub mod sync_committee;

pub use attestation::*;
pub use block::*;
pub use chain_spec::*;
pub use containers::*;
pub use execution::*;
pub use fork::ForkName;
pub use preset::{Mainnet, Minimal, Preset};
pub use primitives::*;
pub use sync_committee::*;

pub use ssz;
pub use ssz_types;
pub use tree_hash;

/// Takes `key` out of a JSON value from outside if it is an object that has
/// it, else null. (`value["key"]` on a mutable value panics when the value
/// is not an object: a peer could crash the node with `[]`.)
pub fn take_field(value: &mut serde_json::Value, key: &str) -> serde_json::Value {
    value
        .get_mut(key)
        .map(serde_json::Value::take)
        .unwrap_or(serde_json::Value::Null)
}
