//! The duty pipeline of a distributed validator node, one module per stage
//! (the layout of ARCHITECTURE.md). This first part holds the consensus
//! stage's edges: QBFT messages on the wire and their authentication with the
//! operators' libp2p keys.

pub mod consensus;
