//! The duty pipeline of a distributed validator node, one module per stage
//! (the layout of ARCHITECTURE.md). So far: the consensus stage's edges (QBFT
//! messages on the wire, signed with the operators' libp2p keys), the decided
//! store (slashing check and record before signing), the signer, and the
//! partial-signature store with the combiner.

pub mod consensus;
pub mod decided;
pub mod duty;
pub mod parsig;
pub mod runtime;
pub mod signer;
