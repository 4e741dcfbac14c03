//! QBFT messages and their authentication seam.

use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A value's identity: SHA-256 of its bytes. The engine never parses values.
pub type ValueHash = [u8; 32];

/// Opaque value bytes, shared between messages without copying.
pub type Value = Arc<[u8]>;

pub fn value_hash(value: &[u8]) -> ValueHash {
    Sha256::digest(value).into()
}

/// What one consensus instance decides: the data of one duty type at one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId {
    pub slot: u64,
    pub duty: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgKind {
    PrePrepare,
    Prepare,
    Commit,
    RoundChange,
}

impl MsgKind {
    fn tag(self) -> u8 {
        match self {
            MsgKind::PrePrepare => 1,
            MsgKind::Prepare => 2,
            MsgKind::Commit => 3,
            MsgKind::RoundChange => 4,
        }
    }
}

/// The signed part of a message.
///
/// `value` is the proposed/voted value's hash; for a ROUND-CHANGE it is the
/// prepared value's hash (zero when `prepared_round` is 0, i.e. nothing prepared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Message {
    pub kind: MsgKind,
    pub instance: InstanceId,
    pub round: u64,
    pub sender: usize,
    pub value: ValueHash,
    pub prepared_round: u64,
}

impl Message {
    /// Canonical bytes for signing: fixed-width fields in a fixed order.
    pub fn signing_bytes(&self) -> [u8; 69] {
        let mut out = [0u8; 69];
        out[0] = self.kind.tag();
        out[1..9].copy_from_slice(&self.instance.slot.to_le_bytes());
        out[9..13].copy_from_slice(&self.instance.duty.to_le_bytes());
        out[13..21].copy_from_slice(&self.round.to_le_bytes());
        out[21..29].copy_from_slice(&(self.sender as u64).to_le_bytes());
        out[29..61].copy_from_slice(&self.value);
        out[61..69].copy_from_slice(&self.prepared_round.to_le_bytes());
        out
    }
}

/// A message as it travels: signed, optionally carrying the value's bytes
/// (PRE-PREPARE always; ROUND-CHANGE when prepared; COMMIT in a certificate
/// sent to a late peer) and, for PRE-PREPARE and ROUND-CHANGE, its justification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedMessage {
    pub message: Message,
    pub signature: Vec<u8>,
    pub value: Option<Value>,
    pub justification: Vec<SignedMessage>,
}

impl SignedMessage {
    /// The same message without value bytes or justification, as embedded in a justification.
    pub fn stripped(&self) -> SignedMessage {
        SignedMessage {
            message: self.message,
            signature: self.signature.clone(),
            value: None,
            justification: Vec::new(),
        }
    }
}

/// Signs this node's messages and verifies anyone's. Authentication is the
/// node's concern (its p2p keys); the engine only asks.
pub trait Authenticator {
    fn sign(&self, message: &Message) -> Vec<u8>;
    fn verify(&self, message: &Message, signature: &[u8]) -> bool;
}
