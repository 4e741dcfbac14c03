//! QBFT messages on the wire, and their signatures.
//!
//! Every consensus message is signed with its operator's libp2p identity key
//! (ed25519) over `"dv-qbft/1" || lock hash || Message::signing_bytes()`, so a
//! message cannot be replayed into another cluster or mistaken for anything
//! else the key signs. The member list, and so every verifying key, comes from
//! the cluster lock's peer ids.
//!
//! On the wire a message is binary (see [`encode`]), so a block value of the
//! largest legal size travels as its own bytes. Decoding is strict and
//! bounded: malformed or oversized input from a peer is an error naming what
//! is wrong, never a panic.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use qbft::{Authenticator, InstanceId, Message, MsgKind, SignedMessage, Value};
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

/// The largest consensus value carried: a block of EIP-7934's 10 MiB limit
/// with its blobs and their proofs (Fulu: a proof per cell), with room to spare.
pub const MAX_VALUE_BYTES: usize = 24 << 20;
/// Signatures are ed25519 (64 bytes); anything longer is not one.
const MAX_SIGNATURE_BYTES: usize = 128;
/// Version byte of the encoding below.
const WIRE_VERSION: u8 = 1;

/// A consensus message on the wire, in binary (big-endian integers):
/// version (1), kind (1), slot (8), duty (4), round (8), sender (4), value
/// hash (32), prepared round (8), signature (2-byte length, bytes), value
/// (1-byte flag, then 4-byte length and bytes), justification (2-byte
/// count, then each message as 4-byte length and its encoding, which
/// carries no value and no justification of its own).
fn write_message(m: &SignedMessage, out: &mut Vec<u8>) {
    out.push(WIRE_VERSION);
    out.push(kind_tag(m.message.kind));
    out.extend_from_slice(&m.message.instance.slot.to_be_bytes());
    out.extend_from_slice(&m.message.instance.duty.to_be_bytes());
    out.extend_from_slice(&m.message.round.to_be_bytes());
    out.extend_from_slice(&(m.message.sender as u32).to_be_bytes());
    out.extend_from_slice(&m.message.value);
    out.extend_from_slice(&m.message.prepared_round.to_be_bytes());
    // Lengths are bounded by construction (own signatures, values and quorums).
    out.extend_from_slice(&(m.signature.len() as u16).to_be_bytes());
    out.extend_from_slice(&m.signature);
    match &m.value {
        Some(value) => {
            out.push(1);
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&(m.justification.len() as u16).to_be_bytes());
    for j in &m.justification {
        let mut inner = Vec::new();
        write_message(j, &mut inner);
        out.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        out.extend_from_slice(&inner);
    }
}

fn kind_tag(kind: MsgKind) -> u8 {
    match kind {
        MsgKind::PrePrepare => 1,
        MsgKind::Prepare => 2,
        MsgKind::Commit => 3,
        MsgKind::RoundChange => 4,
    }
}

pub fn encode(message: &SignedMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + message.value.as_ref().map_or(0, |v| v.len()));
    write_message(message, &mut out);
    out
}

/// Reads the encoding field by field, each read checked against what is left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], WireError> {
        let (head, rest) = self.bytes.split_at_checked(n).ok_or_else(|| {
            WireError::Malformed(format!(
                "truncated: {what} needs {n} bytes, {} left",
                self.bytes.len()
            ))
        })?;
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
}

fn read_message(bytes: &[u8], members: usize, nested: bool) -> Result<SignedMessage, WireError> {
    let malformed = |what: String| WireError::Malformed(what);
    let mut r = Reader { bytes };
    let version = r.u8("version")?;
    if version != WIRE_VERSION {
        return Err(malformed(format!("unknown encoding version {version}")));
    }
    let kind = match r.u8("kind")? {
        1 => MsgKind::PrePrepare,
        2 => MsgKind::Prepare,
        3 => MsgKind::Commit,
        4 => MsgKind::RoundChange,
        other => return Err(malformed(format!("unknown kind {other}"))),
    };
    let slot = r.u64("slot")?;
    let duty = r.u32("duty")?;
    let round = r.u64("round")?;
    let sender = r.u32("sender")? as usize;
    if sender >= members {
        return Err(WireError::UnknownSender { sender, members });
    }
    let value: [u8; 32] = r.array("value hash")?;
    let prepared_round = r.u64("prepared round")?;
    let signature_len = usize::from(r.u16("signature length")?);
    if signature_len > MAX_SIGNATURE_BYTES {
        return Err(malformed(format!("a {signature_len}-byte signature")));
    }
    let signature = r.take(signature_len, "signature")?.to_vec();
    let value_bytes: Option<Value> = match r.u8("value flag")? {
        0 => None,
        1 => {
            let len = r.u32("value length")? as usize;
            if len > MAX_VALUE_BYTES {
                return Err(malformed(format!(
                    "a value of {len} bytes, over {MAX_VALUE_BYTES}"
                )));
            }
            Some(Arc::from(r.take(len, "value")?))
        }
        other => return Err(malformed(format!("value flag {other}"))),
    };
    let count = usize::from(r.u16("justification count")?);
    if nested && (count > 0 || value_bytes.is_some()) {
        return Err(WireError::NestedJustification);
    }
    let limit = MAX_JUSTIFICATION_FACTOR * members;
    if count > limit {
        return Err(WireError::JustificationTooLong { got: count, limit });
    }
    let mut justification = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u32("justification message length")? as usize;
        let inner = r.take(len, "justification message")?;
        justification.push(read_message(inner, members, true)?);
    }
    if !r.bytes.is_empty() {
        return Err(malformed(format!(
            "{} bytes after the message",
            r.bytes.len()
        )));
    }
    Ok(SignedMessage {
        message: Message {
            kind,
            instance: InstanceId { slot, duty },
            round,
            sender,
            value,
            prepared_round,
        },
        signature,
        value: value_bytes,
        justification,
    })
}

/// Decodes a message from a peer of a cluster with `members` operators.
pub fn decode(bytes: &[u8], members: usize) -> Result<SignedMessage, WireError> {
    read_message(bytes, members, false)
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
            decode(b"{not binary", 4),
            Err(WireError::Malformed(_))
        ));
        let bytes = encode(&signed);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], 4).is_err(), "truncated at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer, 4), Err(WireError::Malformed(_))));
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
        let mut bad_kind = encode(&signed);
        bad_kind[1] = 7;
        assert!(matches!(decode(&bad_kind, 4), Err(WireError::Malformed(_))));
        // A value at the limit fits; one byte more is refused before it is read.
        let mut big = signed.clone();
        big.value = Some(Arc::from(vec![7u8; MAX_VALUE_BYTES]));
        assert_eq!(decode(&encode(&big), 4).unwrap().value, big.value);
        big.value = Some(Arc::from(vec![7u8; MAX_VALUE_BYTES + 1]));
        assert!(matches!(
            decode(&encode(&big), 4),
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
