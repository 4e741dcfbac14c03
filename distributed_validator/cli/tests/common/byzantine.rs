//! A Byzantine operator for the fault tests: it holds a real operator's
//! keys (its libp2p identity and its BLS key shares, from that operator's
//! node directory) and, in place of that operator's node, sends the honest
//! nodes everything a malicious operator could, over the real libp2p
//! connection: equivocating votes and proposals, proposals the validity
//! predicate refuses, rounds far ahead, messages for duties that cannot
//! exist, bad partial signatures (over the roots it sees the honest nodes
//! sign), its valid partials replayed under other duties and slots, truncated, malformed and oversized messages, and a
//! flood well above an honest peer's rate.

use dv_cluster::{ClusterLock, NodeDir};
use dv_crypto::{SecretKey, SecretShare};
use dv_node::consensus::{encode, P2pAuthenticator};
use dv_node::exchange::PartialsMessage;
use dv_types::{PublicKeyBytes, Root, SignatureBytes};
use p2p::{Envelope, Topic};
use qbft::{Authenticator, InstanceId, Message, MsgKind, SignedMessage};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Consensus messages a slot in the flood. An honest peer sends about 110
/// a slot in these tests' clusters; the node's budget is 1,500.
pub const FLOOD_PER_SLOT: usize = 2_000;

/// Duty codes as the node numbers them (`DutyType::code`).
const ATTESTER: u32 = 0;
const PROPOSER: u32 = 1;
const RANDAO: u32 = 2;
const SYNC_MESSAGE: u32 = 7;
fn aggregator(committee: u32) -> u32 {
    6 | (committee << 8)
}

pub struct Adversary {
    net: p2p::Handle,
    auth: P2pAuthenticator,
    me: usize,
    members: usize,
    shares: BTreeMap<PublicKeyBytes, SecretShare>,
    /// What it sent, by attack.
    pub sent: BTreeMap<&'static str, usize>,
    noise: super::generated::Gen,
    incoming: tokio::sync::mpsc::UnboundedReceiver<p2p::Incoming>,
    /// The last (slot, duty code, root) an honest peer's partials signed:
    /// what the honest nodes read partials over.
    observed: Option<(u64, u32, Root)>,
}

impl Adversary {
    /// Takes the place of the operator whose node directory is `dir`.
    pub async fn start(dir: &Path) -> Adversary {
        let node = NodeDir::new(dir);
        let lock = ClusterLock::load(&node.lock_path()).expect("the operator's lock");
        let keypair = p2p::load_keypair(&node.p2p_key_path()).expect("the operator's p2p key");
        let peers = dv_node::keys::operator_peer_ids(&lock).expect("peer ids");
        let me = peers
            .iter()
            .position(|p| *p == keypair.public().to_peer_id())
            .expect("a member");
        let members = dv_node::keys::cluster_members(&lock, &peers).expect("addresses");
        let (net, incoming) = p2p::start(p2p::Config {
            keypair: keypair.clone(),
            listen: members[me].address.clone(),
            members,
            max_message_bytes: 64 << 20,
            on_sent: None,
            inbound_budget: p2p::InboundBudget::UNLIMITED,
            on_refused: None,
            on_ack: None,
        })
        .await
        .expect("p2p");
        let auth = P2pAuthenticator::new(keypair, &peers, lock.lock_hash.as_bytes()).expect("auth");
        let shares = dv_node::keys::load_shares(&node, &lock, me)
            .expect("the operator's shares")
            .into_iter()
            .collect();
        Adversary {
            net,
            auth,
            me,
            members: peers.len(),
            shares,
            sent: BTreeMap::new(),
            noise: super::generated::Gen(0x5eed ^ me as u64),
            incoming,
            observed: None,
        }
    }

    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.noise.next() as u8).collect()
    }

    fn count(&mut self, attack: &'static str, n: usize) {
        *self.sent.entry(attack).or_default() += n;
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(4)
    }

    fn send_all(&mut self, attack: &'static str, envelope: Envelope) {
        let _ = self.net.broadcast(envelope, Self::deadline());
        self.count(attack, self.members - 1);
    }

    fn send_one(&mut self, attack: &'static str, peer: usize, envelope: Envelope) {
        let _ = self.net.send(peer, envelope, Self::deadline());
        self.count(attack, 1);
    }

    /// A consensus message signed with the operator's real key.
    #[allow(clippy::too_many_arguments)]
    fn signed(
        &self,
        slot: u64,
        duty: u32,
        kind: MsgKind,
        round: u64,
        value: Option<Vec<u8>>,
        prepared_round: u64,
    ) -> SignedMessage {
        let hash = value.as_deref().map(qbft::value_hash).unwrap_or([0; 32]);
        let message = Message {
            kind,
            instance: InstanceId { slot, duty },
            round,
            sender: self.me,
            value: hash,
            prepared_round,
        };
        SignedMessage {
            signature: self.auth.sign(&message),
            message,
            value: value.map(Arc::from),
            justification: Vec::new(),
        }
    }

    fn consensus(slot: u64, duty: u32, m: &SignedMessage) -> Envelope {
        Envelope::new(slot, duty, Topic::Consensus, encode(m))
    }

    /// One slot's attacks; `slot` is the chain's current slot.
    pub fn attack_slot(&mut self, slot: u64) {
        // Equivocation: two different PREPAREs for round 1 of the attester
        // duty, and, where it leads, a different proposal to each peer
        // (values no validity predicate takes).
        for value in [b"one".to_vec(), b"two".to_vec()] {
            let m = self.signed(slot, ATTESTER, MsgKind::Prepare, 1, Some(value), 0);
            let mut m = m;
            m.value = None;
            self.send_all("equivocating_votes", Self::consensus(slot, ATTESTER, &m));
        }
        for duty in [ATTESTER, PROPOSER] {
            let leader = qbft::default_leader(&InstanceId { slot, duty }, 1, self.members);
            if leader == self.me {
                let me = self.me;
                for peer in (0..self.members).filter(|p| *p != me) {
                    let value = format!("proposal {peer}").into_bytes();
                    let m = self.signed(slot, duty, MsgKind::PrePrepare, 1, Some(value), 0);
                    self.send_one(
                        "equivocating_proposals",
                        peer,
                        Self::consensus(slot, duty, &m),
                    );
                }
            }
        }
        // Rounds far ahead.
        let far = self.signed(slot, ATTESTER, MsgKind::RoundChange, 1_000_000, None, 0);
        self.send_all("rounds_far_ahead", Self::consensus(slot, ATTESTER, &far));
        // Duties that cannot exist: an unknown code, a committee no slot has, a slot far ahead.
        for (duty_slot, duty) in [
            (slot, 9),
            (slot, aggregator(200)),
            (slot + 10_000, ATTESTER),
        ] {
            let m = self.signed(duty_slot, duty, MsgKind::Prepare, 1, None, 0);
            self.send_all("impossible_duties", Self::consensus(duty_slot, duty, &m));
        }
        // Truncated and malformed messages.
        let whole = encode(&self.signed(slot, ATTESTER, MsgKind::Commit, 1, None, 0));
        self.send_all(
            "truncated",
            Envelope::new(
                slot,
                ATTESTER,
                Topic::Consensus,
                whole[..whole.len() / 2].to_vec(),
            ),
        );
        let junk = self.random_bytes(300);
        self.send_all(
            "malformed",
            Envelope::new(slot, ATTESTER, Topic::Consensus, junk.clone()),
        );
        self.send_all(
            "malformed",
            Envelope::new(slot, ATTESTER, Topic::PartialSignatures, junk),
        );
        self.partials_attacks(slot);
        // The flood: valid signatures, for rounds the instance can run, each a new vote.
        for i in 0..FLOOD_PER_SLOT {
            let round = 2 + (i as u64 % 4);
            let mut m = self.signed(
                slot,
                ATTESTER,
                MsgKind::Prepare,
                round,
                Some(vec![i as u8]),
                0,
            );
            m.value = None;
            self.send_all("flood", Self::consensus(slot, ATTESTER, &m));
        }
    }

    /// Notes what the honest peers' partials sign.
    fn observe(&mut self) {
        while let Ok(m) = self.incoming.try_recv() {
            if m.envelope.topic != Topic::PartialSignatures || m.envelope.duty == SYNC_MESSAGE {
                continue;
            }
            if let Ok(partials) = PartialsMessage::decode(&m.envelope.payload) {
                self.observed = Some((m.envelope.slot, m.envelope.duty, partials.root));
            }
        }
    }

    fn partials_attacks(&mut self, slot: u64) {
        let share_index = self.me as u64 + 1;
        let validators: Vec<PublicKeyBytes> = self.shares.keys().copied().collect();
        // Over a root the honest nodes sign (they read partials over no other):
        // not a point at all, a point signed by some other key, another's share.
        self.observe();
        if let Some((seen_slot, duty, root)) = self.observed {
            self.bad_partials(seen_slot, duty, root, &validators, share_index);
        }
        // Valid partials (its real shares) over a root nobody else signs,
        // replayed under other duties and slots: held unread, then counted.
        let root = Root::from_slice(&self.random_bytes(32));
        let replayed = PartialsMessage {
            root,
            partials: self
                .shares
                .iter()
                .map(|(v, share)| {
                    (
                        *v,
                        share_index,
                        SignatureBytes(share.sign(root.as_slice()).signature.to_bytes()),
                    )
                })
                .collect(),
        }
        .encode();
        let duties = [ATTESTER, PROPOSER, RANDAO, SYNC_MESSAGE]
            .into_iter()
            .chain((0..8).map(aggregator));
        for duty in duties {
            for duty_slot in [slot, slot + 1, slot + 2] {
                self.send_all(
                    "replayed_partials",
                    Envelope::new(duty_slot, duty, Topic::PartialSignatures, replayed.clone()),
                );
            }
        }
    }

    fn bad_partials(
        &mut self,
        slot: u64,
        duty: u32,
        root: Root,
        validators: &[PublicKeyBytes],
        share_index: u64,
    ) {
        let stranger = SecretKey::random();
        let bad = PartialsMessage {
            root,
            partials: validators
                .iter()
                .flat_map(|v| {
                    [
                        (*v, share_index, SignatureBytes([0x17; 96])),
                        (
                            *v,
                            share_index,
                            SignatureBytes(stranger.sign(root.as_slice()).to_bytes()),
                        ),
                    ]
                })
                .collect(),
        };
        self.send_all(
            "bad_partials",
            Envelope::new(slot, duty, Topic::PartialSignatures, bad.encode()),
        );
        let other_share = PartialsMessage {
            root,
            partials: validators
                .iter()
                .map(|v| {
                    (
                        *v,
                        share_index % self.members as u64 + 1,
                        SignatureBytes([0; 96]),
                    )
                })
                .collect(),
        };
        self.send_all(
            "wrong_share",
            Envelope::new(slot, duty, Topic::PartialSignatures, other_share.encode()),
        );
    }

    /// One message over every node's size limit.
    pub fn oversized(&mut self, slot: u64) {
        let huge = vec![0u8; dv_node::consensus::MAX_VALUE_BYTES + (2 << 20)];
        self.send_all(
            "oversized",
            Envelope::new(slot, ATTESTER, Topic::Consensus, huge),
        );
    }

    /// Attacks every slot from the chain's genesis (unix ms) until `until_ms`.
    pub async fn run(
        mut self,
        genesis_ms: u64,
        slot_ms: u64,
        until_ms: u64,
    ) -> BTreeMap<&'static str, usize> {
        let now = dv_integration::server::now_ms;
        let mut slot = now().saturating_sub(genesis_ms) / slot_ms;
        while now() < until_ms {
            let at = genesis_ms + slot * slot_ms + slot_ms / 10;
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(now()))).await;
            if slot == 3 {
                self.oversized(slot);
            }
            self.attack_slot(slot);
            slot += 1;
        }
        self.sent
    }
}
