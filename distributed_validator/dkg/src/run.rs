//! The ceremony on the network: the definition's operators only, over the
//! cluster's libp2p (noise-authenticated, so a message's sender is the
//! peer of its connection). Keeps the time of each round, notices an
//! operator that drops, and aborts everyone with one reason.

use crate::ceremony::{Ceremony, CeremonyError};
use crate::definition::Definition;
use crate::message::{DkgMessage, Round};
use crate::output::{check_data_dir, remove_staging, write_outcome};
use dv_crypto::KdfChoice;
use p2p::{Envelope, InboundBudget, Member, Multiaddr, Topic};
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

pub struct RunOptions {
    pub definition: PathBuf,
    pub data_dir: PathBuf,
    /// Where to listen (default: this operator's address in the definition).
    pub listen: Option<Multiaddr>,
    /// How long to wait for every operator to join.
    pub join_timeout: Duration,
    /// How long any later round may take.
    pub round_timeout: Duration,
    /// How long an operator whose message is awaited may stay disconnected.
    pub disconnect_grace: Duration,
    pub kdf: KdfChoice,
}

/// What a finished ceremony reports.
#[derive(Debug)]
pub struct Summary {
    pub lock_hash: String,
    pub validators: Vec<String>,
    pub disqualified: Vec<(usize, String)>,
    pub notes: Vec<String>,
    pub written: Vec<PathBuf>,
    /// Time from the start to each round's completion here.
    pub rounds: Vec<(Round, Duration)>,
    pub total: Duration,
}

/// The largest message a ceremony of this size sends, as JSON: a deal
/// (about 100 bytes per commitment and 70 per encrypted share) or the
/// partial signatures (about 200 bytes per deposit and registration), per
/// validator, with a margin.
fn max_message_bytes(definition: &Definition) -> u64 {
    let body = &definition.body;
    let deal = 110 * body.threshold + 75 * body.operators.len();
    let partials = 210 * (body.deposit_amounts.len() + 1);
    let per_validator = deal.max(partials) + 600;
    (per_validator * body.num_validators + 64 * 1024) as u64
}

/// Runs this operator's part; on success the data directory holds its
/// node, on failure nothing was written there.
pub async fn run(options: RunOptions) -> Result<Summary, String> {
    let started = Instant::now();
    let definition = Definition::load(&options.definition)?;
    let node = check_data_dir(&options.data_dir)?;
    remove_staging(&node);
    let keypair = p2p::load_keypair(&node.p2p_key_path())?;
    let mut ceremony =
        Ceremony::new(definition.clone(), keypair.clone()).map_err(|e| e.to_string())?;
    let me = ceremony.me();
    if let Some(victim) = dv_fault::dkg_bad_share_to() {
        tracing::warn!(
            victim,
            "{}: dealing bad shares on purpose",
            dv_fault::DKG_BAD_SHARE_ENV
        );
        ceremony.deal_bad_shares_to(victim);
    }
    let members = definition
        .body
        .operators
        .iter()
        .map(|o| {
            Ok(Member {
                peer_id: o
                    .peer_id
                    .parse()
                    .map_err(|e| format!("definition: peer id {}: {e}", o.peer_id))?,
                address: o
                    .address
                    .parse()
                    .map_err(|e| format!("definition: address {}: {e}", o.address))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let listen = options
        .listen
        .clone()
        .unwrap_or_else(|| members[me].address.clone());
    let max = max_message_bytes(&definition);
    // Each operator sends one message a round (plus an abort); a generous
    // budget still bounds what one can make this node hold.
    let budget = InboundBudget {
        messages_per_second: 5.0,
        message_burst: 20.0,
        bytes_per_second: max as f64,
        byte_burst: 4.0 * max as f64,
    };
    let (handle, mut incoming) = p2p::start(p2p::Config {
        keypair,
        members,
        listen,
        max_message_bytes: max,
        on_sent: None,
        inbound_budget: budget,
        on_refused: None,
        on_ack: None,
    })
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!(
        operator = me,
        operators = definition.body.operators.len(),
        validators = definition.body.num_validators,
        definition = %definition.definition_hash,
        "key generation ceremony: waiting for every operator"
    );

    let send_window = options.join_timeout + options.round_timeout * 4;
    let broadcast = |round: u64, bytes: Vec<u8>| {
        let envelope = Envelope::new(round, 0, Topic::Dkg, bytes);
        handle.broadcast(envelope, Instant::now() + send_window)
    };
    let first = ceremony.start().map_err(|e| e.to_string())?;
    broadcast(Round::Hello as u64, first).map_err(|e| e.to_string())?;

    let mut rounds = Vec::new();
    let mut round = ceremony.round();
    let mut round_started = Instant::now();
    let mut disconnected_since: Vec<Option<Instant>> = vec![None; definition.body.operators.len()];
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let failure: CeremonyError = loop {
        tokio::select! {
            message = incoming.recv() => {
                let Some(message) = message else {
                    break CeremonyError::Local("the network task stopped".into());
                };
                if message.envelope.topic != Topic::Dkg {
                    continue;
                }
                let result = tokio::task::block_in_place(|| {
                    ceremony.receive(message.from, &message.envelope.payload)
                });
                let sent = result.and_then(|out| {
                    out.into_iter().try_for_each(|bytes| {
                        let round = DkgMessage::decode(&bytes)
                            .ok()
                            .and_then(|m| m.round())
                            .map_or(0, |r| r as u64);
                        broadcast(round, bytes).map_err(|e| CeremonyError::Local(e.to_string()))?;
                        if round == Round::Deal as u64 {
                            dv_fault::reached(dv_fault::DKG_AFTER_DEAL);
                        }
                        Ok(())
                    })
                });
                if let Err(e) = sent {
                    break e;
                }
                if ceremony.round() != round || ceremony.outcome().is_some() {
                    rounds.push((round, started.elapsed()));
                    tracing::info!(round = round.name(), took_ms = round_started.elapsed().as_millis() as u64, "round complete");
                    round = ceremony.round();
                    round_started = Instant::now();
                }
                if ceremony.outcome().is_some() {
                    break CeremonyError::Local(String::new());
                }
            }
            _ = tick.tick() => {
                let limit = if round == Round::Hello { options.join_timeout } else { options.round_timeout };
                let waiting = ceremony.waiting_for();
                if round_started.elapsed() > limit {
                    break CeremonyError::Local(format!(
                        "no {} message within {} s from {}",
                        round.name(),
                        limit.as_secs(),
                        describe(&definition, &waiting)
                    ));
                }
                if round > Round::Hello {
                    let connected = handle.connected().await.unwrap_or_default();
                    let now = Instant::now();
                    for (o, since) in disconnected_since.iter_mut().enumerate() {
                        if o == me || connected.contains(&o) || !waiting.contains(&o) {
                            *since = None;
                        } else if since.is_none() {
                            *since = Some(now);
                        }
                    }
                    let gone: Vec<usize> = (0..disconnected_since.len())
                        .filter(|o| disconnected_since[*o].is_some_and(|t| now - t > options.disconnect_grace))
                        .collect();
                    if !gone.is_empty() {
                        break CeremonyError::Local(format!(
                            "{} disconnected during the {} round",
                            describe(&definition, &gone),
                            round.name()
                        ));
                    }
                }
            }
        }
    };

    let Some(outcome) = ceremony.into_outcome() else {
        let reason = failure.to_string();
        if !matches!(failure, CeremonyError::PeerAborted { .. }) {
            let abort = DkgMessage::Abort {
                reason: reason.clone(),
            };
            let _ = broadcast(u64::from(u8::MAX), abort.encode());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), handle.flush()).await;
        return Err(format!(
            "key generation ceremony aborted: {reason}; nothing was written to {}",
            options.data_dir.display()
        ));
    };
    for (dealer, reason) in &outcome.disqualified {
        tracing::warn!(dealer, %reason, "dealer disqualified");
    }
    for note in &outcome.notes {
        tracing::warn!(%note, "ceremony");
    }
    let written =
        tokio::task::block_in_place(|| write_outcome(&node, &definition, &outcome, options.kdf))?;
    // Others may still be waiting for this node's last message.
    let _ = tokio::time::timeout(options.round_timeout, handle.flush()).await;
    Ok(Summary {
        lock_hash: outcome.lock.lock_hash.clone(),
        validators: outcome
            .lock
            .body
            .validators
            .iter()
            .map(|v| v.public_key.to_string())
            .collect(),
        disqualified: outcome.disqualified.clone(),
        notes: outcome.notes.clone(),
        written,
        rounds,
        total: started.elapsed(),
    })
}

/// "operator 2 (12D3…)" for each operator.
fn describe(definition: &Definition, operators: &[usize]) -> String {
    operators
        .iter()
        .map(|o| format!("operator {o} ({})", definition.body.operators[*o].peer_id))
        .collect::<Vec<_>>()
        .join(", ")
}
