//! QBFT messages on the wire, and their signatures.
//!
//! Every consensus message is signed with its operator's libp2p identity key
//! (ed25519) over `"dv-qbft/1" || lock hash || Message::signing_bytes()`, so a
//! message cannot be replayed into another cluster or mistaken for anything
//! else the key signs. The member list, and so every verifying key, comes from
//! the cluster lock's peer ids.
//!
//! Decoding is strict and bounded: malformed or oversized input from a peer is
//! an error naming what is wrong, never a panic.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use qbft::{Authenticator, InstanceId, Message, MsgKind, SignedMessage, Value};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const SIGNING_DOMAIN: &[u8] = b"dv-qbft/1";
/// More than any honest justification: a quorum of round changes plus a quorum of prepares.
const MAX_JUSTIFICATION_FACTOR: usize = 2;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("malformed consensus message: {0}")]
    Malformed(String),
    #[error("consensus message from member {sender}, but the cluster has {members}")]
    UnknownSender { sender: usize, members: usize },
    #[error("justification of {got} messages exceeds the limit of {limit}")]
    JustificationTooLong { got: usize, limit: usize },
    #[error("a message inside a justification carries its own justification")]
    NestedJustification,
    #[error("peer id {0} does not embed its public key")]
    OpaquePeerId(PeerId),
}

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    kind: u8,
    slot: u64,
    duty: u32,
    round: u64,
    sender: u32,
    value: String,
    prepared_round: u64,
    signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    justification: Vec<Wire>,
}

fn kind_tag(kind: MsgKind) -> u8 {
    match kind {
        MsgKind::PrePrepare => 1,
        MsgKind::Prepare => 2,
        MsgKind::Commit => 3,
        MsgKind::RoundChange => 4,
    }
}

fn to_wire(m: &SignedMessage) -> Wire {
    Wire {
        kind: kind_tag(m.message.kind),
        slot: m.message.instance.slot,
        duty: m.message.instance.duty,
        round: m.message.round,
        sender: m.message.sender as u32,
        value: hex::encode(m.message.value),
        prepared_round: m.message.prepared_round,
        signature: hex::encode(&m.signature),
        value_bytes: m.value.as_ref().map(hex::encode),
        justification: m.justification.iter().map(to_wire).collect(),
    }
}

pub fn encode(message: &SignedMessage) -> Vec<u8> {
    // Plain data (strings, integers, vectors): serialisation cannot fail.
    serde_json::to_vec(&to_wire(message)).unwrap_or_default()
}

fn from_wire(w: Wire, members: usize, nested: bool) -> Result<SignedMessage, WireError> {
    let malformed = |what: &str| WireError::Malformed(what.to_string());
    let kind = match w.kind {
        1 => MsgKind::PrePrepare,
        2 => MsgKind::Prepare,
        3 => MsgKind::Commit,
        4 => MsgKind::RoundChange,
        other => return Err(WireError::Malformed(format!("unknown kind {other}"))),
    };
    let sender = w.sender as usize;
    if sender >= members {
        return Err(WireError::UnknownSender { sender, members });
    }
    let value: [u8; 32] = hex::decode(&w.value)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| malformed("value hash is not 32 bytes of hex"))?;
    let signature = hex::decode(&w.signature).map_err(|_| malformed("signature is not hex"))?;
    let value_bytes: Option<Value> = match w.value_bytes {
        Some(text) => Some(Arc::from(
            hex::decode(text).map_err(|_| malformed("value is not hex"))?,
        )),
        None => None,
    };
    if nested && !w.justification.is_empty() {
        return Err(WireError::NestedJustification);
    }
    let limit = MAX_JUSTIFICATION_FACTOR * members;
    if w.justification.len() > limit {
        return Err(WireError::JustificationTooLong {
            got: w.justification.len(),
            limit,
        });
    }
    let justification = w
        .justification
        .into_iter()
        .map(|j| from_wire(j, members, true))
        .collect::<Result<_, _>>()?;
    Ok(SignedMessage {
        message: Message {
            kind,
            instance: InstanceId {
                slot: w.slot,
                duty: w.duty,
            },
            round: w.round,
            sender,
            value,
            prepared_round: w.prepared_round,
        },
        signature,
        value: value_bytes,
        justification,
    })
}

/// Decodes a message from a peer of a cluster with `members` operators.
pub fn decode(bytes: &[u8], members: usize) -> Result<SignedMessage, WireError> {
    let wire: Wire =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    from_wire(wire, members, false)
}

/// The public key an ed25519 (or other inline-key) peer id embeds.
pub fn public_key_of(peer: &PeerId) -> Result<PublicKey, WireError> {
    let bytes = peer.to_bytes();
    // Multihash: code (varint, 0x00 = identity), length (varint < 128 here), digest.
    match bytes.as_slice() {
        [0x00, len, digest @ ..] if *len as usize == digest.len() => {
            PublicKey::try_decode_protobuf(digest).map_err(|_| WireError::OpaquePeerId(*peer))
        }
        _ => Err(WireError::OpaquePeerId(*peer)),
    }
}

/// Signs with this operator's key and verifies with the lock's keys.
#[derive(Clone)]
pub struct P2pAuthenticator {
    keypair: Keypair,
    members: Vec<PublicKey>,
    lock_hash: Vec<u8>,
}

impl P2pAuthenticator {
    pub fn new(
        keypair: Keypair,
        member_peers: &[PeerId],
        lock_hash: &[u8],
    ) -> Result<Self, WireError> {
        let members = member_peers
            .iter()
            .map(public_key_of)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keypair,
            members,
            lock_hash: lock_hash.to_vec(),
        })
    }

    fn preimage(&self, message: &Message) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SIGNING_DOMAIN.len() + self.lock_hash.len() + 69);
        bytes.extend_from_slice(SIGNING_DOMAIN);
        bytes.extend_from_slice(&self.lock_hash);
        bytes.extend_from_slice(&message.signing_bytes());
        bytes
    }
}

impl Authenticator for P2pAuthenticator {
    fn sign(&self, message: &Message) -> Vec<u8> {
        // ed25519 signing cannot fail; an empty signature would simply not verify.
        self.keypair
            .sign(&self.preimage(message))
            .unwrap_or_default()
    }

    fn verify(&self, message: &Message, signature: &[u8]) -> bool {
        self.members
            .get(message.sender)
            .is_some_and(|key| key.verify(&self.preimage(message), signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qbft::value_hash;

    fn members(n: usize) -> (Vec<Keypair>, Vec<PeerId>) {
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
        let peers = keys.iter().map(|k| k.public().to_peer_id()).collect();
        (keys, peers)
    }

    fn message(sender: usize, kind: MsgKind) -> Message {
        Message {
            kind,
            instance: InstanceId { slot: 9, duty: 1 },
            round: 2,
            sender,
            value: value_hash(b"v"),
            prepared_round: 0,
        }
    }

    #[test]
    fn signatures_bind_sender_cluster_and_content() {
        let (keys, peers) = members(4);
        let alice = P2pAuthenticator::new(keys[1].clone(), &peers, b"lock-a").unwrap();
        let verifier = P2pAuthenticator::new(keys[0].clone(), &peers, b"lock-a").unwrap();
        let other_cluster = P2pAuthenticator::new(keys[0].clone(), &peers, b"lock-b").unwrap();
        let m = message(1, MsgKind::Prepare);
        let sig = alice.sign(&m);
        assert!(verifier.verify(&m, &sig));
        assert!(
            !other_cluster.verify(&m, &sig),
            "replayed into another cluster"
        );
        assert!(
            !verifier.verify(&message(2, MsgKind::Prepare), &sig),
            "claimed by another member"
        );
        assert!(
            !verifier.verify(&message(1, MsgKind::Commit), &sig),
            "another kind"
        );
        assert!(
            !verifier.verify(&message(9, MsgKind::Prepare), &sig),
            "a non-member"
        );
    }

    #[test]
    fn wire_round_trip_and_bad_input() {
        let (keys, peers) = members(4);
        let auth = P2pAuthenticator::new(keys[0].clone(), &peers, b"lock").unwrap();
        let inner = SignedMessage {
            message: message(2, MsgKind::RoundChange),
            signature: vec![1, 2],
            value: None,
            justification: vec![],
        };
        let m = message(0, MsgKind::PrePrepare);
        let signed = SignedMessage {
            signature: auth.sign(&m),
            message: m,
            value: Some(Arc::from(&b"v"[..])),
            justification: vec![inner.clone(), inner.clone()],
        };
        let decoded = decode(&encode(&signed), 4).unwrap();
        assert_eq!(decoded, signed);
        assert!(auth.verify(&decoded.message, &decoded.signature));

        assert!(matches!(
            decode(b"{not json", 4),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(
            decode(&encode(&signed), 2).unwrap_err(),
            WireError::UnknownSender {
                sender: 2,
                members: 2
            }
        );
        let mut nested = signed.clone();
        nested.justification[0].justification = vec![inner.clone()];
        assert_eq!(
            decode(&encode(&nested), 4).unwrap_err(),
            WireError::NestedJustification
        );
        let mut long = signed.clone();
        long.justification = vec![inner; 9];
        assert!(matches!(
            decode(&encode(&long), 4),
            Err(WireError::JustificationTooLong { got: 9, limit: 8 })
        ));
        let bad_kind =
            String::from_utf8(encode(&signed))
                .unwrap()
                .replacen("\"kind\":1", "\"kind\":7", 1);
        assert!(matches!(
            decode(bad_kind.as_bytes(), 4),
            Err(WireError::Malformed(_))
        ));
    }

    /// Four engines reach a decision with real ed25519 signatures and the wire format in between.
    #[test]
    fn engines_decide_over_the_wire_format() {
        use qbft::*;
        let (keys, peers) = members(4);
        let mut engines = Vec::new();
        let mut queue = std::collections::VecDeque::new();
        for (me, key) in keys.iter().enumerate() {
            let cfg = Config {
                instance: InstanceId { slot: 9, duty: 1 },
                members: 4,
                me,
                leader: Arc::new(default_leader),
                is_valid: Box::new(|_| true),
                timing: RoundTiming::default(),
                max_round: DEFAULT_MAX_ROUND,
            };
            let auth = P2pAuthenticator::new(key.clone(), &peers, b"lock").unwrap();
            let (engine, actions) = Instance::new(
                cfg,
                auth,
                Some(Arc::from(format!("value {me}").into_bytes())),
            );
            engines.push(engine);
            queue.push_back((me, actions));
        }
        let mut decided = vec![None; 4];
        while let Some((from, actions)) = queue.pop_front() {
            for action in actions {
                match action {
                    Action::Broadcast(m) => {
                        let bytes = encode(&m);
                        for to in (0..4).filter(|t| *t != from) {
                            let msg = decode(&bytes, 4).unwrap();
                            if let Ok(out) = engines[to].handle_message(msg) {
                                queue.push_back((to, out));
                            }
                        }
                    }
                    Action::Decide { value, .. } => decided[from] = Some(value),
                    _ => {}
                }
            }
        }
        assert!(
            decided.iter().all(|d| d.is_some() && *d == decided[0]),
            "{decided:?}"
        );
    }
}
