//! The ceremony as a pure state machine: it takes each operator's message
//! of each round and, when a round is complete, checks it and answers with
//! this operator's message of the next. No I/O: the driver (`run`) carries
//! messages and keeps time.
//!
//! 1. **hello**: every operator accepts the definition hash (signed with
//!    its p2p key) and announces a fresh ceremony key.
//! 2. **deal**: every operator deals every validator: Feldman commitments
//!    to a random polynomial, a proof of possession of its constant term,
//!    and each operator's share encrypted to it.
//! 3. **complaints**: every operator echoes a digest of each deal it got
//!    (a dealer that sent different deals is caught) and complains, with
//!    evidence everyone can check, about dealers whose shares fail. A
//!    dealer whose deal is malformed or whose complaint holds is
//!    disqualified by every honest operator alike; the keys are the sums
//!    over the qualified dealers.
//! 4. **partials**: every operator signs each validator's deposits and
//!    builder registration with its new share; any threshold combine.
//! 5. **lock signed**: every operator signs the lock hash with its p2p
//!    key and its shares; the lock carries the operators' signatures and
//!    the validator keys' aggregate signature.

use crate::definition::Definition;
use crate::deposit::{deposit_signing_root, withdrawal_credentials};
use crate::message::*;
use dv_cluster::lock::{builder_domain, BuilderRegistration, LOCK_VERSION};
use dv_cluster::{
    verify_operator_signature, ClusterLock, DistributedValidator, LockBody, LockSignatures,
    Operator,
};
use dv_crypto::dkg::{
    decrypt_share, encrypt_share, prove_shared_point, shared_point, sign_possession,
    sum_secret_keys, verify_shared_point, Commitments, Polynomial, ShareAddress, SharedPointProof,
};
use dv_crypto::{
    batch_verify_messages, batch_verify_messages_parallel, combine, par_map, PartialSignature,
    PublicKey, SecretKey, SecretShare, Signature, ThresholdParams,
};
use dv_types::{
    compute_signing_root, DepositData, DepositMessage, Hash256, PublicKeyBytes, Root,
    SignatureBytes, ValidatorRegistration,
};
use sha2::{Digest, Sha256};

/// Why the ceremony stopped. Every operator that sees the same fault stops
/// with the same words; a peer's fault names the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyError {
    #[error("operator {operator} ({peer_id}): {reason}")]
    Peer {
        operator: usize,
        peer_id: String,
        reason: String,
    },
    #[error("operator {operator} ({peer_id}) aborted the ceremony: {reason}")]
    PeerAborted {
        operator: usize,
        peer_id: String,
        reason: String,
    },
    #[error("{0}")]
    Local(String),
}

/// What a finished ceremony leaves this operator.
#[derive(Clone)]
pub struct Outcome {
    pub lock: ClusterLock,
    /// This operator's share of each validator key.
    pub shares: Vec<SecretShare>,
    /// Per deposit amount of the definition, every validator's deposit.
    pub deposits: Vec<Vec<DepositData>>,
    /// Dealers disqualified, with why (empty when all dealt honestly).
    pub disqualified: Vec<(usize, String)>,
    /// Things seen that did not stop the ceremony (false complaints).
    pub notes: Vec<String>,
}

/// One validator as the qualified deals define it.
#[derive(Clone)]
struct JointKey {
    public_key: PublicKey,
    public_shares: Vec<PublicKey>,
    share: SecretShare,
}

/// A message and its bytes as they arrived (deal digests are over the bytes).
type Received = (Vec<u8>, DkgMessage);

/// Cloneable so that a fuzz target can start each input from one state.
#[derive(Clone)]
pub struct Ceremony {
    definition: Definition,
    definition_hash: [u8; 32],
    me: usize,
    params: ThresholdParams,
    identity: libp2p_identity::Keypair,
    ceremony_key: SecretKey,
    /// The round being collected.
    round: Round,
    /// Per operator, per round: the message and its bytes as received.
    received: Vec<Vec<Option<Received>>>,
    ceremony_keys: Vec<PublicKey>,
    acceptances: Vec<String>,
    /// Shares dealt to this operator, per dealer, per validator (after the deal round).
    my_shares: Vec<Vec<Option<SecretKey>>>,
    commitments: Vec<Option<Vec<Commitments>>>,
    disqualified: Vec<(usize, String)>,
    notes: Vec<String>,
    keys: Vec<JointKey>,
    deposits: Vec<Vec<DepositData>>,
    unsigned: Option<ClusterLock>,
    outcome: Option<Outcome>,
    /// Fault injection: deal this operator shares that fail their commitments.
    corrupt_share_to: Option<usize>,
}

fn context(definition_hash: &[u8; 32], dealer: usize, validator: usize) -> Vec<u8> {
    let mut out = b"dv-dkg/possession/v1".to_vec();
    out.extend_from_slice(definition_hash);
    out.extend_from_slice(&(dealer as u64).to_be_bytes());
    out.extend_from_slice(&(validator as u64).to_be_bytes());
    out
}

fn local(reason: impl std::fmt::Display) -> CeremonyError {
    CeremonyError::Local(reason.to_string())
}

impl Ceremony {
    /// A ceremony for the operator whose p2p key is `identity`.
    pub fn new(
        definition: Definition,
        identity: libp2p_identity::Keypair,
    ) -> Result<Self, CeremonyError> {
        let body = &definition.body;
        let me = body
            .operator_index(&identity.public().to_peer_id().to_base58())
            .map_err(local)?;
        let n = body.operators.len();
        let params = ThresholdParams::new(body.threshold, n).map_err(local)?;
        Ok(Self {
            definition_hash: definition.hash_bytes(),
            me,
            params,
            identity,
            ceremony_key: SecretKey::random(),
            round: Round::Hello,
            received: vec![vec![None; Round::ALL.len()]; n],
            ceremony_keys: Vec::new(),
            acceptances: Vec::new(),
            my_shares: Vec::new(),
            commitments: vec![None; n],
            disqualified: Vec::new(),
            notes: Vec::new(),
            keys: Vec::new(),
            deposits: Vec::new(),
            unsigned: None,
            outcome: None,
            definition,
            corrupt_share_to: None,
        })
    }

    pub fn me(&self) -> usize {
        self.me
    }

    /// Makes this operator a cheating dealer towards `operator` (its shares
    /// to it will fail their commitments): for the tests of disqualification.
    pub fn deal_bad_shares_to(&mut self, operator: usize) {
        self.corrupt_share_to = Some(operator);
    }

    pub fn round(&self) -> Round {
        self.round
    }

    fn n(&self) -> usize {
        self.definition.body.operators.len()
    }

    fn validators(&self) -> usize {
        self.definition.body.num_validators
    }

    fn peer_id(&self, operator: usize) -> String {
        self.definition.body.operators[operator].peer_id.clone()
    }

    fn peer_error(&self, operator: usize, reason: impl std::fmt::Display) -> CeremonyError {
        CeremonyError::Peer {
            operator,
            peer_id: self.peer_id(operator),
            reason: reason.to_string(),
        }
    }

    /// Operators whose message of the current round has not arrived.
    pub fn waiting_for(&self) -> Vec<usize> {
        if self.outcome.is_some() {
            return Vec::new();
        }
        (0..self.n())
            .filter(|o| self.received[*o][self.round as usize].is_none())
            .collect()
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn into_outcome(self) -> Option<Outcome> {
        self.outcome
    }

    /// This operator's first message.
    pub fn start(&mut self) -> Result<Vec<u8>, CeremonyError> {
        let acceptance = self
            .identity
            .sign(&self.definition_hash)
            .map_err(|e| local(format!("signing the definition hash: {e}")))?;
        let hello = DkgMessage::Hello(Hello {
            definition_hash: self.definition.definition_hash.clone(),
            acceptance: format!("0x{}", hex::encode(acceptance)),
            ceremony_key: PublicKeyBytes(self.ceremony_key.public_key().to_bytes()),
        });
        self.own(hello)
    }

    /// Records this operator's own message and returns its bytes to broadcast.
    fn own(&mut self, message: DkgMessage) -> Result<Vec<u8>, CeremonyError> {
        let bytes = message.encode();
        if let Some(round) = message.round() {
            self.received[self.me][round as usize] = Some((bytes.clone(), message));
        }
        Ok(bytes)
    }

    /// Takes a message from `from`; returns this operator's messages to
    /// broadcast (the next rounds', as far as the ceremony could advance).
    pub fn receive(&mut self, from: usize, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CeremonyError> {
        if from >= self.n() || from == self.me {
            return Err(local(format!("a message attributed to operator {from}")));
        }
        let message = DkgMessage::decode(bytes).map_err(|e| self.peer_error(from, e))?;
        let Some(round) = message.round() else {
            let DkgMessage::Abort { reason } = message else {
                return Ok(Vec::new());
            };
            return Err(CeremonyError::PeerAborted {
                operator: from,
                peer_id: self.peer_id(from),
                reason,
            });
        };
        match &self.received[from][round as usize] {
            Some((seen, _)) if seen == bytes => return Ok(Vec::new()),
            Some(_) => {
                return Err(self.peer_error(
                    from,
                    format!("sent two different {} messages", round.name()),
                ))
            }
            None => {}
        }
        if round < self.round {
            return Err(self.peer_error(
                from,
                format!("sent its {} message after that round ended", round.name()),
            ));
        }
        self.received[from][round as usize] = Some((bytes.to_vec(), message));
        let mut out = Vec::new();
        while self.outcome.is_none() && self.waiting_for().is_empty() {
            let next = match self.round {
                Round::Hello => Some(self.after_hello()?),
                Round::Deal => Some(self.after_deal()?),
                Round::Complaints => Some(self.after_complaints()?),
                Round::Partials => Some(self.after_partials()?),
                Round::LockSigned => {
                    self.after_lock_signed()?;
                    None
                }
            };
            if let Some(message) = next {
                out.push(self.own(message)?);
            }
            if let Some(round) = self.round.next() {
                self.round = round;
            }
        }
        Ok(out)
    }

    fn messages(&self, round: Round) -> impl Iterator<Item = (usize, &DkgMessage)> {
        self.received
            .iter()
            .enumerate()
            .filter_map(move |(o, r)| r[round as usize].as_ref().map(|(_, m)| (o, m)))
    }

    fn after_hello(&mut self) -> Result<DkgMessage, CeremonyError> {
        let mut keys = Vec::new();
        let mut acceptances = Vec::new();
        for (o, message) in self.messages(Round::Hello) {
            let DkgMessage::Hello(hello) = message else {
                return Err(self.peer_error(o, "sent another message in the hello round"));
            };
            if hello.definition_hash != self.definition.definition_hash {
                return Err(self.peer_error(
                    o,
                    format!(
                        "holds definition {}, this node {}: the operators were given different definitions",
                        hello.definition_hash, self.definition.definition_hash
                    ),
                ));
            }
            if !verify_operator_signature(
                &self.peer_id(o),
                &self.definition_hash,
                &hello.acceptance,
            ) {
                return Err(self.peer_error(
                    o,
                    "its acceptance is not its signature of the definition hash",
                ));
            }
            let key = PublicKey::from_bytes(&hello.ceremony_key.0)
                .map_err(|e| self.peer_error(o, format!("ceremony key: {e}")))?;
            keys.push(key);
            acceptances.push(hello.acceptance.clone());
        }
        self.ceremony_keys = keys;
        self.acceptances = acceptances;
        self.deal()
    }

    /// This operator's deal: a polynomial per validator.
    fn deal(&mut self) -> Result<DkgMessage, CeremonyError> {
        let (n, t, me) = (self.n(), self.params.threshold(), self.me);
        let pads: Vec<Option<PublicKey>> = (0..n)
            .map(|j| {
                (j != me)
                    .then(|| shared_point(&self.ceremony_key, &self.ceremony_keys[j]))
                    .transpose()
            })
            .collect::<Result<_, _>>()
            .map_err(local)?;
        let indices: Vec<usize> = (0..self.validators()).collect();
        // Each validator's polynomial on any core; secrets stay in this process.
        let dealt = par_map(
            &indices,
            |&k| -> Result<(ValidatorDeal, SecretKey), CeremonyError> {
                let polynomial = Polynomial::random(t, n);
                let commitments = polynomial.commitments().map_err(local)?;
                let possession =
                    sign_possession(&polynomial, &context(&self.definition_hash, me, k))
                        .map_err(local)?;
                let own = polynomial.share(me as u64 + 1).map_err(local)?;
                let mut shares = Vec::with_capacity(n);
                for (j, pad) in pads.iter().enumerate() {
                    let Some(pad) = pad else {
                        shares.push(Hash256::ZERO);
                        continue;
                    };
                    let share = if self.corrupt_share_to == Some(j) {
                        SecretKey::random()
                    } else {
                        polynomial.share(j as u64 + 1).map_err(local)?
                    };
                    let to = ShareAddress {
                        context: &self.definition_hash,
                        dealer: me as u64 + 1,
                        recipient: j as u64 + 1,
                        validator: k as u64,
                    };
                    shares.push(Hash256::from(encrypt_share(&share, pad, to)));
                }
                let deal = ValidatorDeal {
                    commitments: commitments
                        .0
                        .iter()
                        .map(|c| PublicKeyBytes(c.to_bytes()))
                        .collect(),
                    possession: SignatureBytes(possession.to_bytes()),
                    shares,
                };
                Ok((deal, own))
            },
        );
        let mut own_shares = Vec::with_capacity(self.validators());
        let mut validators = Vec::with_capacity(self.validators());
        for result in dealt {
            let (deal, own) = result?;
            validators.push(deal);
            own_shares.push(Some(own));
        }
        self.my_shares = vec![vec![None; self.validators()]; n];
        self.my_shares[me] = own_shares;
        Ok(DkgMessage::Deal(Deal { validators }))
    }

    /// A deal's commitments, if it is well formed and proves possession:
    /// faults everyone sees alike in the same bytes.
    fn check_deal(&self, dealer: usize, deal: &Deal) -> Result<Vec<Commitments>, String> {
        let (n, t) = (self.n(), self.params.threshold());
        if deal.validators.len() != self.validators() {
            return Err(format!(
                "its deal covers {} validators, the definition {}",
                deal.validators.len(),
                self.validators()
            ));
        }
        let indexed: Vec<(usize, &ValidatorDeal)> = deal.validators.iter().enumerate().collect();
        let parsed = par_map(&indexed, |&(k, v)| -> Result<_, String> {
            if v.commitments.len() != t || v.shares.len() != n {
                return Err(format!(
                    "validator {k}: {} commitments and {} shares, expected {t} and {n}",
                    v.commitments.len(),
                    v.shares.len()
                ));
            }
            let commitments = v
                .commitments
                .iter()
                .map(|c| PublicKey::from_bytes(&c.0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("validator {k}: commitment: {e}"))?;
            let possession = Signature::from_bytes(&v.possession.0)
                .map_err(|e| format!("validator {k}: possession proof: {e}"))?;
            Ok((Commitments(commitments), possession))
        });
        let mut all = Vec::with_capacity(deal.validators.len());
        let mut possessions = Vec::with_capacity(deal.validators.len());
        for (k, result) in parsed.into_iter().enumerate() {
            let (commitments, possession) = result?;
            possessions.push((
                commitments.0[0],
                context(&self.definition_hash, dealer, k),
                possession,
            ));
            all.push(commitments);
        }
        let items: Vec<(PublicKey, &[u8], Signature)> = possessions
            .iter()
            .map(|(key, message, sig)| (*key, message.as_slice(), *sig))
            .collect();
        if !batch_verify_messages(&items) {
            let k = items
                .iter()
                .position(|(key, message, sig)| !key.verify(message, sig))
                .unwrap_or_default();
            return Err(format!(
                "validator {k}: its proof of possession does not verify under its first commitment"
            ));
        }
        Ok(all)
    }

    fn after_deal(&mut self) -> Result<DkgMessage, CeremonyError> {
        let n = self.n();
        let mut digests = Vec::with_capacity(n);
        let mut complaints = Vec::new();
        for dealer in 0..n {
            let Some((bytes, message)) = &self.received[dealer][Round::Deal as usize] else {
                return Err(local("internal: a deal is missing"));
            };
            digests.push(Hash256::from(<[u8; 32]>::from(Sha256::digest(bytes))));
            let DkgMessage::Deal(deal) = message else {
                return Err(self.peer_error(dealer, "sent another message in the deal round"));
            };
            let commitments = match self.check_deal(dealer, deal) {
                Ok(c) => c,
                Err(reason) => {
                    // Everyone holds these bytes (the digests prove it): all disqualify.
                    self.disqualified.push((dealer, reason));
                    continue;
                }
            };
            if dealer != self.me {
                let shares = self.open_shares(dealer, deal, &commitments);
                match shares {
                    Ok(shares) => self.my_shares[dealer] = shares.into_iter().map(Some).collect(),
                    Err(_) => {
                        let (shared, proof) =
                            prove_shared_point(&self.ceremony_key, &self.ceremony_keys[dealer])
                                .map_err(local)?;
                        complaints.push(Complaint {
                            dealer,
                            shared_point: PublicKeyBytes(shared.to_bytes()),
                            challenge: Hash256::from(proof.challenge),
                            response: Hash256::from(proof.response),
                        });
                    }
                }
            }
            self.commitments[dealer] = Some(commitments);
        }
        Ok(DkgMessage::Complaints(Complaints {
            deal_digests: digests,
            complaints,
        }))
    }

    /// Decrypts and checks every share `dealer` dealt to this operator.
    fn open_shares(
        &self,
        dealer: usize,
        deal: &Deal,
        commitments: &[Commitments],
    ) -> Result<Vec<SecretKey>, usize> {
        let shared =
            shared_point(&self.ceremony_key, &self.ceremony_keys[dealer]).map_err(|_| 0usize)?;
        self.open_with(&shared, dealer, self.me, deal, commitments)
    }

    /// Decrypts with a known shared point; the error is the first failing validator.
    fn open_with(
        &self,
        shared: &PublicKey,
        dealer: usize,
        recipient: usize,
        deal: &Deal,
        commitments: &[Commitments],
    ) -> Result<Vec<SecretKey>, usize> {
        let indexed: Vec<(usize, (&ValidatorDeal, &Commitments))> = deal
            .validators
            .iter()
            .zip(commitments)
            .enumerate()
            .collect();
        par_map(&indexed, |&(k, (v, c))| {
            let from = ShareAddress {
                context: &self.definition_hash,
                dealer: dealer as u64 + 1,
                recipient: recipient as u64 + 1,
                validator: k as u64,
            };
            decrypt_share(&v.shares[recipient].0, shared, from)
                .ok()
                .filter(|share| c.verify_share(recipient as u64 + 1, share))
                .ok_or(k)
        })
        .into_iter()
        .collect()
    }

    fn after_complaints(&mut self) -> Result<DkgMessage, CeremonyError> {
        let n = self.n();
        let own_digests = match &self.received[self.me][Round::Complaints as usize] {
            Some((_, DkgMessage::Complaints(c))) => c.deal_digests.clone(),
            _ => return Err(local("internal: own complaints missing")),
        };
        let mut judged: Vec<(usize, usize, Complaint)> = Vec::new();
        for (o, message) in self.messages(Round::Complaints) {
            let DkgMessage::Complaints(c) = message else {
                return Err(self.peer_error(o, "sent another message in the complaints round"));
            };
            if c.deal_digests.len() != n {
                return Err(self.peer_error(
                    o,
                    format!(
                        "echoed {} deal digests for {n} dealers",
                        c.deal_digests.len()
                    ),
                ));
            }
            let differing = c
                .deal_digests
                .iter()
                .zip(&own_digests)
                .position(|(a, b)| a != b);
            if let Some(dealer) = differing {
                {
                    return Err(self.peer_error(
                        dealer,
                        format!(
                            "operator {o} and this node hold different deals from it: it sent different deals to different operators, or operator {o} echoed a false digest"
                        ),
                    ));
                }
            }
            judged.extend(
                c.complaints
                    .iter()
                    .map(|complaint| (o, complaint.dealer, complaint.clone())),
            );
        }
        for (complainant, dealer, complaint) in judged {
            self.judge(complainant, dealer, &complaint);
        }
        self.disqualified.sort_by_key(|(d, _)| *d);
        self.disqualified.dedup_by_key(|(d, _)| *d);
        let qualified: Vec<usize> = (0..n)
            .filter(|d| !self.disqualified.iter().any(|(x, _)| x == d))
            .collect();
        if qualified.len() < self.params.threshold() {
            return Err(local(format!(
                "only {} of {n} dealers qualified ({}); at least the threshold {} are needed",
                qualified.len(),
                self.describe_disqualified(),
                self.params.threshold()
            )));
        }
        // A disqualified dealer still holds a valid share of the qualified
        // dealers' keys and signs with it: the others need its signatures.
        if let Some((_, reason)) = self.disqualified.iter().find(|(d, _)| *d == self.me) {
            self.notes
                .push(format!("this node's own deal was disqualified: {reason}"));
        }
        self.keys = self.joint_keys(&qualified)?;
        self.sign_partials()
    }

    /// Judges one complaint the same way on every honest operator.
    fn judge(&mut self, complainant: usize, dealer: usize, complaint: &Complaint) {
        let n = self.n();
        if dealer >= n || dealer == complainant {
            self.notes.push(format!("operator {complainant} complained about operator {dealer}, who is not another operator; ignored"));
            return;
        }
        let Some(commitments) = self.commitments[dealer].clone() else {
            return; // already disqualified for a malformed deal
        };
        let shared = match PublicKey::from_bytes(&complaint.shared_point.0) {
            Ok(point) => point,
            Err(_) => {
                self.notes.push(format!("operator {complainant}'s complaint about operator {dealer} reveals no valid point; ignored"));
                return;
            }
        };
        let proof = SharedPointProof {
            challenge: complaint.challenge.0,
            response: complaint.response.0,
        };
        if !verify_shared_point(
            &self.ceremony_keys[complainant],
            &self.ceremony_keys[dealer],
            &shared,
            &proof,
        ) {
            self.notes.push(format!("operator {complainant}'s complaint about operator {dealer} has no valid proof; ignored"));
            return;
        }
        let Some((_, DkgMessage::Deal(deal))) = &self.received[dealer][Round::Deal as usize] else {
            return;
        };
        match self.open_with(&shared, dealer, complainant, deal, &commitments) {
            Err(k) => self.disqualified.push((
                dealer,
                format!("its share to operator {complainant} for validator {k} does not match its commitments"),
            )),
            Ok(_) => self.notes.push(format!(
                "operator {complainant} complained about operator {dealer}, whose shares to it are valid; ignored"
            )),
        }
    }

    fn describe_disqualified(&self) -> String {
        self.disqualified
            .iter()
            .map(|(d, reason)| format!("operator {d} disqualified: {reason}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Each validator's key, public shares and this operator's share: the
    /// sums over the qualified dealers.
    fn joint_keys(&mut self, qualified: &[usize]) -> Result<Vec<JointKey>, CeremonyError> {
        let n = self.n();
        let mut keys = Vec::with_capacity(self.validators());
        for k in 0..self.validators() {
            let parts: Vec<&Commitments> = qualified
                .iter()
                .filter_map(|d| self.commitments[*d].as_ref().map(|c| &c[k]))
                .collect();
            let joint = Commitments::sum(&parts).map_err(local)?;
            let public_shares = (1..=n as u64)
                .map(|index| joint.evaluate(index))
                .collect::<Result<Vec<_>, _>>()
                .map_err(local)?;
            let mine: Vec<&SecretKey> = qualified
                .iter()
                .filter_map(|d| self.my_shares[*d][k].as_ref())
                .collect();
            if mine.len() != qualified.len() {
                return Err(local(format!(
                    "validator {k}: a qualified dealer's share to this node is missing"
                )));
            }
            let secret = sum_secret_keys(&mine).map_err(local)?;
            if secret.public_key() != public_shares[self.me] {
                return Err(local(format!(
                    "validator {k}: this node's share does not match the joint commitments"
                )));
            }
            keys.push(JointKey {
                public_key: joint.0[0],
                public_shares,
                share: SecretShare {
                    index: self.me as u64 + 1,
                    secret,
                },
            });
        }
        // The dealt shares are no longer needed.
        self.my_shares.clear();
        Ok(keys)
    }

    fn deposit_message(&self, k: usize, amount: u64) -> DepositMessage {
        let body = &self.definition.body;
        DepositMessage {
            pubkey: PublicKeyBytes(self.keys[k].public_key.to_bytes()),
            withdrawal_credentials: withdrawal_credentials(
                body.withdrawal_address,
                body.compounding,
            ),
            amount,
        }
    }

    fn registration_root(&self, k: usize) -> Root {
        let body = &self.definition.body;
        let message = ValidatorRegistration {
            fee_recipient: body.fee_recipient,
            gas_limit: body.gas_limit,
            timestamp: body.timestamp,
            pubkey: PublicKeyBytes(self.keys[k].public_key.to_bytes()),
        };
        compute_signing_root(&message, builder_domain(body.fork_version))
    }

    /// Per validator: every deposit's root, then the registration's.
    fn roots(&self, k: usize) -> Vec<Root> {
        let body = &self.definition.body;
        let mut roots: Vec<Root> = body
            .deposit_amounts
            .iter()
            .map(|amount| {
                deposit_signing_root(&self.deposit_message(k, *amount), body.fork_version)
            })
            .collect();
        roots.push(self.registration_root(k));
        roots
    }

    fn sign_partials(&mut self) -> Result<DkgMessage, CeremonyError> {
        let indices: Vec<usize> = (0..self.validators()).collect();
        let validators = par_map(&indices, |&k| {
            let share = &self.keys[k].share;
            let mut signatures: Vec<SignatureBytes> = self
                .roots(k)
                .iter()
                .map(|root| SignatureBytes(share.sign(root.as_slice()).signature.to_bytes()))
                .collect();
            let registration = signatures.pop().unwrap_or_else(SignatureBytes::infinity);
            ValidatorPartials {
                deposits: signatures,
                registration,
            }
        });
        Ok(DkgMessage::Partials(Partials { validators }))
    }

    /// Verifies every operator's partials over `roots` (per validator) and
    /// combines each message; `partials(o)` is operator `o`'s per validator.
    fn combine_all(
        &self,
        round: Round,
        roots: &[Vec<Root>],
        partials: impl Fn(&DkgMessage) -> Option<Vec<Vec<SignatureBytes>>>,
    ) -> Result<Vec<Vec<Signature>>, CeremonyError> {
        let n = self.n();
        let mut by_operator = Vec::with_capacity(n);
        for (o, message) in self.messages(round) {
            let signatures = partials(message)
                .filter(|s| {
                    s.len() == roots.len() && s.iter().zip(roots).all(|(a, b)| a.len() == b.len())
                })
                .ok_or_else(|| {
                    self.peer_error(
                        o,
                        format!(
                            "its {} message does not cover every validator",
                            round.name()
                        ),
                    )
                })?;
            let parsed = signatures
                .iter()
                .map(|per| {
                    per.iter()
                        .map(|s| Signature::from_bytes(&s.0))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.peer_error(o, format!("{}: {e}", round.name())))?;
            by_operator.push((o, parsed));
        }
        // One batch for everyone's partials (entries over one message share
        // a Miller loop); only if it fails, one per operator to name who.
        let items_of =
            |o: usize, parsed: &Vec<Vec<Signature>>| -> Vec<(PublicKey, Root, Signature)> {
                parsed
                    .iter()
                    .enumerate()
                    .flat_map(|(k, per)| {
                        per.iter()
                            .zip(&roots[k])
                            .map(move |(sig, root)| (self.keys[k].public_shares[o], *root, *sig))
                    })
                    .collect()
            };
        let as_batch = |items: &[(PublicKey, Root, Signature)]| {
            let borrowed: Vec<(PublicKey, &[u8], Signature)> = items
                .iter()
                .map(|(key, root, sig)| (*key, root.as_slice(), *sig))
                .collect();
            batch_verify_messages(&borrowed)
        };
        // Ordered by validator, so the entries over one message sit together.
        let everyone: Vec<(PublicKey, &[u8], Signature)> = (0..roots.len())
            .flat_map(|k| {
                by_operator.iter().flat_map(move |(o, parsed)| {
                    parsed[k].iter().zip(&roots[k]).map(move |(sig, root)| {
                        (self.keys[k].public_shares[*o], root.as_slice(), *sig)
                    })
                })
            })
            .collect();
        if !batch_verify_messages_parallel(&everyone) {
            for (o, parsed) in &by_operator {
                let items = items_of(*o, parsed);
                if !as_batch(&items) {
                    let bad = items
                        .iter()
                        .position(|(key, root, sig)| !key.verify(root.as_slice(), sig))
                        .unwrap_or_default();
                    return Err(self
                        .peer_error(*o, format!("sent an invalid {} (item {bad})", round.name())));
                }
            }
        }
        let mut combined = Vec::with_capacity(roots.len());
        for (k, per) in roots.iter().enumerate() {
            let mut signatures = Vec::with_capacity(per.len());
            for m in 0..per.len() {
                let partials: Vec<PartialSignature> = by_operator
                    .iter()
                    .take(self.params.threshold())
                    .map(|(o, parsed)| PartialSignature {
                        index: *o as u64 + 1,
                        signature: parsed[k][m],
                    })
                    .collect();
                let signature = combine(&partials, self.params).map_err(|e| {
                    local(format!(
                        "validator {k}: combining the {}: {e}",
                        round.name()
                    ))
                })?;
                signatures.push(signature);
            }
            combined.push(signatures);
        }
        // Every combined signature verified under its validator key (one batch).
        let items: Vec<(PublicKey, &[u8], Signature)> = combined
            .iter()
            .enumerate()
            .flat_map(|(k, sigs)| {
                sigs.iter()
                    .zip(&roots[k])
                    .map(move |(sig, root)| (self.keys[k].public_key, root.as_slice(), *sig))
            })
            .collect();
        if !batch_verify_messages_parallel(&items) {
            return Err(local(format!(
                "a combined {} does not verify under its validator key",
                round.name()
            )));
        }
        Ok(combined)
    }

    fn after_partials(&mut self) -> Result<DkgMessage, CeremonyError> {
        let roots: Vec<Vec<Root>> = (0..self.validators()).map(|k| self.roots(k)).collect();
        let combined = self.combine_all(Round::Partials, &roots, |message| match message {
            DkgMessage::Partials(p) => Some(
                p.validators
                    .iter()
                    .map(|v| {
                        let mut all = v.deposits.clone();
                        all.push(v.registration);
                        all
                    })
                    .collect(),
            ),
            _ => None,
        })?;
        let body = &self.definition.body;
        let mut deposits = vec![Vec::with_capacity(self.validators()); body.deposit_amounts.len()];
        let mut validators = Vec::with_capacity(self.validators());
        for (k, signatures) in combined.iter().enumerate() {
            for (a, amount) in body.deposit_amounts.iter().enumerate() {
                let message = self.deposit_message(k, *amount);
                deposits[a].push(DepositData {
                    pubkey: message.pubkey,
                    withdrawal_credentials: message.withdrawal_credentials,
                    amount: message.amount,
                    signature: SignatureBytes(signatures[a].to_bytes()),
                });
            }
            let registration = signatures
                .last()
                .ok_or_else(|| local("internal: no registration"))?;
            validators.push(DistributedValidator {
                public_key: PublicKeyBytes(self.keys[k].public_key.to_bytes()),
                public_shares: self.keys[k]
                    .public_shares
                    .iter()
                    .map(|s| PublicKeyBytes(s.to_bytes()))
                    .collect(),
                builder_registration: Some(BuilderRegistration {
                    fee_recipient: body.fee_recipient,
                    gas_limit: body.gas_limit,
                    timestamp: body.timestamp,
                    signature: SignatureBytes(registration.to_bytes()),
                }),
            });
        }
        let lock = ClusterLock::new(LockBody {
            version: LOCK_VERSION.into(),
            name: body.name.clone(),
            network: body.network.clone(),
            fork_version: body.fork_version,
            threshold: body.threshold,
            operators: body
                .operators
                .iter()
                .enumerate()
                .map(|(index, o)| Operator {
                    index,
                    peer_id: o.peer_id.clone(),
                    address: o.address.clone(),
                })
                .collect(),
            validators,
            definition_hash: Some(self.definition.definition_hash.clone()),
        });
        lock.body
            .validate()
            .map_err(|e| local(format!("the lock made: {e}")))?;
        let lock_hash = dv_cluster::hash_bytes(&lock.lock_hash).map_err(local)?;
        let operator_signature = self
            .identity
            .sign(&lock_hash)
            .map_err(|e| local(format!("signing the lock hash: {e}")))?;
        let partials = par_map(&self.keys, |key| {
            SignatureBytes(key.share.sign(&lock_hash).signature.to_bytes())
        });
        self.deposits = deposits;
        let message = DkgMessage::LockSigned(LockSigned {
            lock_hash: lock.lock_hash.clone(),
            operator_signature: format!("0x{}", hex::encode(operator_signature)),
            partials,
        });
        self.unsigned = Some(lock);
        Ok(message)
    }

    fn after_lock_signed(&mut self) -> Result<(), CeremonyError> {
        let mut lock = self
            .unsigned
            .take()
            .ok_or_else(|| local("internal: no lock"))?;
        let lock_hash = dv_cluster::hash_bytes(&lock.lock_hash).map_err(local)?;
        let mut operator_signatures = Vec::with_capacity(self.n());
        for (o, message) in self.messages(Round::LockSigned) {
            let DkgMessage::LockSigned(signed) = message else {
                return Err(self.peer_error(o, "sent another message in the lock round"));
            };
            if signed.lock_hash != lock.lock_hash {
                return Err(self.peer_error(
                    o,
                    format!(
                        "made lock {}, this node {}: the operators disagree on the cluster",
                        signed.lock_hash, lock.lock_hash
                    ),
                ));
            }
            if !verify_operator_signature(&self.peer_id(o), &lock_hash, &signed.operator_signature)
            {
                return Err(self.peer_error(
                    o,
                    "its lock signature is not its signature of the lock hash",
                ));
            }
            operator_signatures.push(signed.operator_signature.clone());
        }
        let roots: Vec<Vec<Root>> = (0..self.validators())
            .map(|_| vec![Root::from(lock_hash)])
            .collect();
        let combined = self.combine_all(Round::LockSigned, &roots, |message| match message {
            DkgMessage::LockSigned(s) => Some(s.partials.iter().map(|p| vec![*p]).collect()),
            _ => None,
        })?;
        let signatures: Vec<Signature> = combined.into_iter().flatten().collect();
        let aggregate = Signature::aggregate(&signatures)
            .ok_or_else(|| local("no validator signatures to aggregate"))?;
        lock.signatures = Some(LockSignatures {
            operator_acceptances: self.acceptances.clone(),
            operator_signatures,
            signature_aggregate: SignatureBytes(aggregate.to_bytes()),
        });
        // The lock as any node will load it: hash, shares, registrations, signatures.
        ClusterLock::from_json(&lock.to_json())
            .map_err(|e| local(format!("the lock made does not load: {e}")))?;
        self.outcome = Some(Outcome {
            lock,
            shares: self.keys.iter().map(|k| k.share.clone()).collect(),
            deposits: std::mem::take(&mut self.deposits),
            disqualified: self.disqualified.clone(),
            notes: std::mem::take(&mut self.notes),
        });
        self.keys.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::tests::{operator_keys, options};
    use dv_crypto::{combine_public_shares, combine_secret_shares, PublicShare};

    /// Runs ceremonies in memory, delivering every message to everyone.
    fn run(ceremonies: &mut [Ceremony]) -> Result<(), CeremonyError> {
        let mut queue: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, c) in ceremonies.iter_mut().enumerate() {
            queue.push((i, c.start()?));
        }
        while let Some((from, bytes)) = queue.pop() {
            for (to, ceremony) in ceremonies.iter_mut().enumerate() {
                if to != from {
                    for out in ceremony.receive(from, &bytes)? {
                        queue.insert(0, (to, out));
                    }
                }
            }
        }
        Ok(())
    }

    fn ceremonies(n: usize, validators: usize) -> Vec<Ceremony> {
        let keys = operator_keys(n);
        let definition = Definition::create(options(&keys, validators), &keys[0]).unwrap();
        keys.into_iter()
            .map(|k| Ceremony::new(definition.clone(), k).unwrap())
            .collect()
    }

    fn check_outcomes(ceremonies: Vec<Ceremony>) -> Vec<Outcome> {
        let outcomes: Vec<Outcome> = ceremonies
            .into_iter()
            .map(|c| c.into_outcome().unwrap())
            .collect();
        let lock = &outcomes[0].lock;
        let params = lock.body.threshold_params().unwrap();
        for o in &outcomes {
            assert_eq!(o.lock, *lock);
        }
        for (k, v) in lock.body.validators.iter().enumerate() {
            let key = PublicKey::from_bytes(&v.public_key.0).unwrap();
            let shares: Vec<SecretShare> = outcomes.iter().map(|o| o.shares[k].clone()).collect();
            // Any t shares rebuild the key; any t public shares interpolate to it.
            combine_secret_shares(&shares[shares.len() - params.threshold()..], params, &key)
                .unwrap();
            let public: Vec<PublicShare> = shares.iter().map(|s| s.public_share()).collect();
            assert_eq!(
                combine_public_shares(&public[..params.threshold()], params).unwrap(),
                key
            );
            for deposits in &outcomes[0].deposits {
                let root = deposit_signing_root(&deposits[k].message(), lock.body.fork_version);
                let sig = Signature::from_bytes(&deposits[k].signature.0).unwrap();
                assert!(key.verify(root.as_slice(), &sig));
            }
        }
        outcomes
    }

    #[test]
    fn four_operators_agree_on_keys_deposits_and_a_signed_lock() {
        let mut all = ceremonies(4, 3);
        run(&mut all).unwrap();
        let outcomes = check_outcomes(all);
        assert!(outcomes[0].disqualified.is_empty());
        assert!(outcomes[0].lock.signatures.is_some());
    }

    #[test]
    fn a_dealer_of_a_bad_share_is_disqualified_by_everyone_and_the_rest_finish() {
        let mut all = ceremonies(4, 2);
        all[1].deal_bad_shares_to(2);
        run(&mut all).unwrap();
        let outcomes = check_outcomes(all);
        for o in &outcomes {
            assert_eq!(o.disqualified.len(), 1, "{:?}", o.disqualified);
            assert_eq!(o.disqualified[0].0, 1);
            assert!(
                o.disqualified[0].1.contains("operator 2"),
                "{}",
                o.disqualified[0].1
            );
        }
    }

    #[test]
    fn different_definitions_are_refused_naming_the_operator() {
        let keys = operator_keys(4);
        let a = Definition::create(options(&keys, 1), &keys[0]).unwrap();
        let b = Definition::create(options(&keys, 2), &keys[0]).unwrap();
        let mut all: Vec<Ceremony> = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| Ceremony::new(if i == 3 { b.clone() } else { a.clone() }, k).unwrap())
            .collect();
        let err = run(&mut all).unwrap_err();
        assert!(err.to_string().contains("different definitions"), "{err}");
    }

    #[test]
    fn a_malformed_or_misplaced_message_names_its_sender() {
        let mut all = ceremonies(4, 1);
        all[0].start().unwrap();
        let err = all[0].receive(2, b"not json").unwrap_err();
        assert!(err.to_string().starts_with("operator 2 ("), "{err}");
        assert!(
            err.to_string().contains("malformed ceremony message"),
            "{err}"
        );
        // A deal before the hellos are in: kept for its round, then judged.
        let mut all = ceremonies(4, 1);
        let deals = exchange_hellos(&mut all);
        let mut fresh = ceremonies(4, 1).remove(0);
        fresh.start().unwrap();
        assert!(fresh.receive(1, &deals[1]).unwrap().is_empty());
        // Its own message index is refused.
        let err = all[0].receive(0, &deals[1]).unwrap_err();
        assert!(
            err.to_string().contains("attributed to operator 0"),
            "{err}"
        );
        // A second, different hello from the same operator.
        let mut other = ceremonies(4, 1);
        let second = other[1].start().unwrap();
        let err = all[0].receive(1, &second).unwrap_err();
        assert!(
            err.to_string()
                .contains("sent two different hello messages"),
            "{err}"
        );
    }

    #[test]
    fn an_outsider_is_refused() {
        let keys = operator_keys(4);
        let definition = Definition::create(options(&keys, 1), &keys[0]).unwrap();
        let outsider = libp2p_identity::Keypair::generate_ed25519();
        let err = Ceremony::new(definition, outsider).err().unwrap();
        assert!(err.to_string().contains("not an operator"), "{err}");
    }

    /// Every ceremony's hello delivered to every other; returns each one's deal.
    fn exchange_hellos(all: &mut [Ceremony]) -> Vec<Vec<u8>> {
        let hellos: Vec<Vec<u8>> = all.iter_mut().map(|c| c.start().unwrap()).collect();
        let mut deals = vec![Vec::new(); all.len()];
        for (from, hello) in hellos.iter().enumerate() {
            for (to, c) in all.iter_mut().enumerate() {
                if to != from {
                    for out in c.receive(from, hello).unwrap() {
                        deals[to] = out;
                    }
                }
            }
        }
        deals
    }

    #[test]
    fn a_dealer_that_sends_different_deals_is_named_by_everyone() {
        let mut all = ceremonies(4, 2);
        let deals = exchange_hellos(&mut all);
        // Dealer 1 sends operator 2 a deal whose share for operator 3 differs.
        let mut other: DkgMessage = DkgMessage::decode(&deals[1]).unwrap();
        if let DkgMessage::Deal(deal) = &mut other {
            deal.validators[0].shares[3] = Hash256::repeat_byte(7);
        }
        let other = other.encode();
        let mut complaints = Vec::new();
        for (from, deal) in deals.iter().enumerate() {
            for (to, c) in all.iter_mut().enumerate() {
                if to == from {
                    continue;
                }
                let bytes = if from == 1 && to == 2 { &other } else { deal };
                for out in c.receive(from, bytes).unwrap() {
                    complaints.push((to, out));
                }
            }
        }
        assert_eq!(complaints.len(), 4);
        let mut errors = Vec::new();
        for (from, bytes) in &complaints {
            for (to, c) in all.iter_mut().enumerate() {
                if to != *from {
                    if let Err(e) = c.receive(*from, bytes) {
                        errors.push((to, e.to_string()));
                    }
                }
            }
        }
        // Each operator stops at the first echo that differs from its own.
        for to in 0..4 {
            let error = errors
                .iter()
                .find(|(t, _)| *t == to)
                .map(|(_, e)| e.clone());
            let error = error.unwrap_or_else(|| panic!("operator {to} went on"));
            assert!(error.starts_with("operator 1 ("), "{error}");
            assert!(error.contains("different deals"), "{error}");
        }
    }

    #[test]
    fn a_false_complaint_is_ignored_and_the_ceremony_finishes() {
        let mut all = ceremonies(4, 2);
        let deals = exchange_hellos(&mut all);
        let mut complaints = vec![Vec::new(); 4];
        for (from, deal) in deals.iter().enumerate() {
            for (to, c) in all.iter_mut().enumerate() {
                if to != from {
                    for out in c.receive(from, deal).unwrap() {
                        complaints[to] = out;
                    }
                }
            }
        }
        // Operator 3 complains about dealer 0, whose shares are valid, with a
        // true proof of their shared point.
        let (shared, proof) =
            prove_shared_point(&all[3].ceremony_key, &all[3].ceremony_keys[0]).unwrap();
        let mut message = DkgMessage::decode(&complaints[3]).unwrap();
        if let DkgMessage::Complaints(c) = &mut message {
            c.complaints.push(Complaint {
                dealer: 0,
                shared_point: PublicKeyBytes(shared.to_bytes()),
                challenge: Hash256::from(proof.challenge),
                response: Hash256::from(proof.response),
            });
        }
        complaints[3] = message.encode();
        all[3].received[3][Round::Complaints as usize] = Some((
            complaints[3].clone(),
            DkgMessage::decode(&complaints[3]).unwrap(),
        ));
        let mut queue: Vec<(usize, Vec<u8>)> = complaints.into_iter().enumerate().collect();
        while let Some((from, bytes)) = queue.pop() {
            for (to, c) in all.iter_mut().enumerate() {
                if to != from {
                    for out in c.receive(from, &bytes).unwrap() {
                        queue.insert(0, (to, out));
                    }
                }
            }
        }
        let outcomes = check_outcomes(all);
        for o in &outcomes {
            assert!(o.disqualified.is_empty(), "{:?}", o.disqualified);
            assert!(
                o.notes.iter().any(|n| n.contains(
                    "operator 3 complained about operator 0, whose shares to it are valid"
                )),
                "{:?}",
                o.notes
            );
        }
    }
}
