//! The ceremony's messages, one per operator per round, each broadcast to
//! every operator (JSON inside a p2p envelope whose `slot` is the round).

use dv_types::{Hash256, PublicKeyBytes, SignatureBytes};
use serde::{Deserialize, Serialize};

/// The rounds, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Round {
    Hello = 0,
    Deal = 1,
    Complaints = 2,
    Partials = 3,
    LockSigned = 4,
}

impl Round {
    pub const ALL: [Round; 5] = [
        Round::Hello,
        Round::Deal,
        Round::Complaints,
        Round::Partials,
        Round::LockSigned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Round::Hello => "hello",
            Round::Deal => "deal",
            Round::Complaints => "complaints",
            Round::Partials => "partial signatures",
            Round::LockSigned => "lock signature",
        }
    }

    pub fn next(self) -> Option<Round> {
        Self::ALL.get(self as usize + 1).copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DkgMessage {
    Hello(Hello),
    Deal(Deal),
    Complaints(Complaints),
    Partials(Partials),
    LockSigned(LockSigned),
    /// The sender gave up; every operator stops with its reason.
    Abort {
        reason: String,
    },
}

impl DkgMessage {
    /// The round it belongs to (`None` for an abort).
    pub fn round(&self) -> Option<Round> {
        match self {
            DkgMessage::Hello(_) => Some(Round::Hello),
            DkgMessage::Deal(_) => Some(Round::Deal),
            DkgMessage::Complaints(_) => Some(Round::Complaints),
            DkgMessage::Partials(_) => Some(Round::Partials),
            DkgMessage::LockSigned(_) => Some(Round::LockSigned),
            DkgMessage::Abort { .. } => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("malformed ceremony message: {e}"))
    }
}

/// An operator's acceptance of the definition and its key for this ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub definition_hash: String,
    /// Its p2p key's signature (hex) of the definition hash.
    pub acceptance: String,
    /// A fresh G1 key for this ceremony only: shares to this operator are
    /// encrypted under its Diffie-Hellman point with the dealer's.
    pub ceremony_key: PublicKeyBytes,
}

/// A dealer's contribution to every validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    pub validators: Vec<ValidatorDeal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorDeal {
    /// Feldman commitments to the dealer's polynomial, `threshold` of them.
    pub commitments: Vec<PublicKeyBytes>,
    /// The polynomial's constant term's signature of the ceremony context.
    pub possession: SignatureBytes,
    /// The encrypted share of each operator, in definition order (the
    /// dealer's own entry is zero).
    pub shares: Vec<Hash256>,
}

/// What an operator found in the deals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaints {
    /// SHA-256 of each dealer's deal as this operator received it: a dealer
    /// that sent different deals to different operators is caught here.
    pub deal_digests: Vec<Hash256>,
    pub complaints: Vec<Complaint>,
}

/// "Dealer `dealer`'s shares to me do not match its commitments": the
/// complainant reveals the Diffie-Hellman point between them, with its
/// proof, so that everyone can decrypt those shares and judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    pub dealer: usize,
    pub shared_point: PublicKeyBytes,
    pub challenge: Hash256,
    pub response: Hash256,
}

/// Partial signatures with the new shares, per validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partials {
    pub validators: Vec<ValidatorPartials>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorPartials {
    /// One per deposit amount of the definition.
    pub deposits: Vec<SignatureBytes>,
    pub registration: SignatureBytes,
}

/// The lock as this operator computed it, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSigned {
    pub lock_hash: String,
    /// Its p2p key's signature (hex) of the lock hash.
    pub operator_signature: String,
    /// Per validator, its share's signature of the lock hash.
    pub partials: Vec<SignatureBytes>,
}
