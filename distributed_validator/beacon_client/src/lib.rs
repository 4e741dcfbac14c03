//! A typed Beacon API client for the endpoints a validator uses, and
//! [`BeaconNodes`], which tries each configured beacon node in turn.
//!
//! Every error names the beacon node it came from and what went wrong
//! (transport, HTTP status with the node's message, or an undecodable body),
//! so a bad answer from outside is a clear log line, never a panic.

pub mod block_contents;
pub mod encoding;

use dv_types::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Builder registrations per `register_validator` request, as Lighthouse's
/// validator client sends them (`VALIDATOR_REGISTRATION_BATCH_SIZE` in its
/// preparation service): one body for thousands of validators exceeds what
/// beacon nodes accept (a simulated-chain run at 5,000 got HTTP 413).
pub const REGISTRATION_BATCH_SIZE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("beacon node {url}: request failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("beacon node {url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("beacon node {url}: unexpected response: {reason}")]
    Decode { url: String, reason: String },
    /// Every configured beacon node failed; each one's error, in order.
    #[error("every beacon node failed: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<Error>),
}

impl Error {
    /// A 4xx answer means the request itself was refused (e.g. an invalid
    /// signature): asking another node would not help.
    pub fn is_request_refused(&self) -> bool {
        matches!(self, Error::Status { status, .. } if (400..500).contains(status))
    }

    /// The beacon node's answer to a block it already has: Lodestar before
    /// v1.16 answers `500 BLOCK_ERROR_ALREADY_KNOWN` (later versions 200),
    /// Lighthouse `202` (a success) unless `--http-duplicate-block-status`
    /// makes it 400 with "duplicate"/"already known" in its message.
    fn is_block_already_known(&self) -> bool {
        let Error::Status { message, .. } = self else {
            return false;
        };
        let lower = message.to_ascii_lowercase();
        lower.contains("already_known")
            || lower.contains("already known")
            || lower.contains("duplicate")
    }
}

/// How a beacon node took a published block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// Accepted as new (200), or accepted without guarantees (202: Lighthouse's
    /// answer to a duplicate).
    Accepted,
    /// The node already had this block (another operator published it
    /// first): the block is out, the duty is done.
    AlreadyKnown,
}

impl Publication {
    /// The outcome line of a published block.
    pub fn outcome(self) -> &'static str {
        match self {
            Publication::Accepted => "block published",
            Publication::AlreadyKnown => {
                "block published (the beacon node already had it from another operator)"
            }
        }
    }
}

/// A sync committee member's duty for an epoch (`/eth/v1/validator/duties/sync`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SyncDuty {
    pub pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: u64,
    /// Positions in the sync committee (a validator can hold several).
    #[serde(with = "serde_utils::quoted_u64_vec")]
    pub validator_sync_committee_indices: Vec<u64>,
}

/// `POST /eth/v1/validator/beacon_committee_subscriptions` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BeaconCommitteeSubscription {
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub committee_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub committees_at_slot: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    pub is_aggregator: bool,
}

/// `POST /eth/v1/validator/sync_committee_subscriptions` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncCommitteeSubscription {
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: u64,
    #[serde(with = "serde_utils::quoted_u64_vec")]
    pub sync_committee_indices: Vec<u64>,
    #[serde(with = "serde_utils::quoted_u64")]
    pub until_epoch: Epoch,
}

/// `POST /eth/v1/validator/prepare_beacon_proposer` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProposerPreparation {
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: u64,
    pub fee_recipient: Address,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Genesis {
    #[serde(with = "serde_utils::quoted_u64")]
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
    pub genesis_fork_version: Version,
}

/// `GET /eth/v1/node/syncing`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SyncStatus {
    #[serde(with = "serde_utils::quoted_u64")]
    pub head_slot: Slot,
    #[serde(with = "serde_utils::quoted_u64")]
    pub sync_distance: u64,
    pub is_syncing: bool,
    #[serde(default)]
    pub is_optimistic: bool,
    #[serde(default)]
    pub el_offline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidatorInfo {
    #[serde(with = "serde_utils::quoted_u64")]
    pub index: u64,
    pub status: String,
    pub validator: ValidatorRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidatorRecord {
    pub pubkey: PublicKeyBytes,
    /// FAR_FUTURE_EPOCH until the chain processed an exit.
    #[serde(with = "serde_utils::quoted_u64")]
    pub exit_epoch: Epoch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct AttesterDuty {
    pub pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub committee_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub committee_length: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub committees_at_slot: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_committee_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ProposerDuty {
    pub pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
}

/// Duties with the root they depend on: when it changes, fetch them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duties<T> {
    pub dependent_root: Root,
    pub duties: Vec<T>,
}

/// A block from `/eth/v3/validator/blocks/{slot}`: full (with the blobs it
/// commits to, which are published with it) or blinded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducedBlock<P: Preset> {
    Full(VersionedBlock<P>, BlobsBundle),
    Blinded(VersionedBlindedBlock<P>),
}

/// Bytes of a blob and of a KZG proof.
const BLOB_BYTES: usize = 131_072;
const KZG_PROOF_BYTES: usize = 48;
/// From Fulu a block's contents carry a proof per cell of the extended blob.
const CELLS_PER_EXT_BLOB: usize = 128;

/// The blobs of a full block and their KZG proofs, as `0x`-hex strings the
/// way the Beacon API carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobsBundle {
    pub kzg_proofs: Vec<String>,
    pub blobs: Vec<String>,
}

fn hex_of_len(text: &str, bytes: usize) -> Result<Vec<u8>, String> {
    let digits = text.strip_prefix("0x").ok_or("hex without 0x")?;
    if digits.len() != 2 * bytes {
        return Err(format!(
            "{} hex digits, expected {}",
            digits.len(),
            2 * bytes
        ));
    }
    hex::decode(digits).map_err(|e| e.to_string())
}

impl BlobsBundle {
    /// Whether this bundle fits a `fork` block committing to `commitments` blobs.
    pub fn check(&self, fork: ForkName, commitments: usize) -> Result<(), String> {
        let proofs_per_blob = if fork >= ForkName::Fulu {
            CELLS_PER_EXT_BLOB
        } else {
            1
        };
        if self.blobs.len() != commitments || self.kzg_proofs.len() != commitments * proofs_per_blob
        {
            return Err(format!(
                "{} blobs and {} proofs for {commitments} commitments ({fork})",
                self.blobs.len(),
                self.kzg_proofs.len()
            ));
        }
        self.proofs_ssz()?;
        self.blobs_ssz()?;
        Ok(())
    }

    /// The proofs as SSZ (a list of fixed-size items: their bytes in a row).
    pub fn proofs_ssz(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.kzg_proofs.len() * KZG_PROOF_BYTES);
        for p in &self.kzg_proofs {
            out.extend(hex_of_len(p, KZG_PROOF_BYTES).map_err(|e| format!("KZG proof: {e}"))?);
        }
        Ok(out)
    }

    /// A bundle from the SSZ of its proofs and blobs lists (fixed-size items).
    pub fn from_ssz(proofs: &[u8], blobs: &[u8]) -> Result<Self, String> {
        let items = |bytes: &[u8], size: usize, what: &str| -> Result<Vec<String>, String> {
            if !bytes.len().is_multiple_of(size) {
                return Err(format!(
                    "{what}: {} bytes, not a list of {size}-byte items",
                    bytes.len()
                ));
            }
            Ok(bytes
                .chunks(size)
                .map(|c| format!("0x{}", hex::encode(c)))
                .collect())
        };
        Ok(Self {
            kzg_proofs: items(proofs, KZG_PROOF_BYTES, "KZG proofs")?,
            blobs: items(blobs, BLOB_BYTES, "blobs")?,
        })
    }

    /// The blobs as SSZ.
    pub fn blobs_ssz(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.blobs.len() * BLOB_BYTES);
        for b in &self.blobs {
            out.extend(hex_of_len(b, BLOB_BYTES).map_err(|e| format!("blob: {e}"))?);
        }
        Ok(out)
    }
}

/// A beacon node's answer to `GET /eth/v3/validator/blocks`: a blinded
/// block, or from Deneb a full block's `BlockContents` whose blobs must fit
/// its commitments.
pub fn decode_produced_block<P: Preset>(mut body: Value) -> Result<ProducedBlock<P>, String> {
    let fork: ForkName = body["version"]
        .as_str()
        .ok_or("no version in block response")?
        .parse()?;
    let blinded = body["execution_payload_blinded"].as_bool().unwrap_or(false);
    let mut data = take_field(&mut body, "data");
    if blinded {
        return VersionedBlindedBlock::from_json_value(fork, data)
            .map(ProducedBlock::Blinded)
            .map_err(|e| e.to_string());
    }
    let block = VersionedBlock::from_json_value(fork, take_field(&mut data, "block"))
        .map_err(|e| e.to_string())?;
    let blobs = BlobsBundle {
        kzg_proofs: serde_json::from_value(take_field(&mut data, "kzg_proofs"))
            .map_err(|e| format!("kzg_proofs: {e}"))?,
        blobs: serde_json::from_value(take_field(&mut data, "blobs"))
            .map_err(|e| format!("blobs: {e}"))?,
    };
    blobs.check(fork, block.blob_commitment_count())?;
    Ok(ProducedBlock::Full(block, blobs))
}

/// Told of every request a beacon node answered or failed: its endpoint
/// (the path with ids as `{id}`), the node's position in the list, how long
/// it took, and whether it failed.
pub type RequestObserver = Arc<dyn Fn(&str, usize, Duration, bool) + Send + Sync>;

/// One beacon node.
#[derive(Clone)]
pub struct BeaconNode {
    url: String,
    http: reqwest::Client,
    /// Its position in the node list (the `node` of its metrics).
    position: usize,
    observer: Option<RequestObserver>,
}

impl std::fmt::Debug for BeaconNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeaconNode")
            .field("url", &self.url)
            .finish()
    }
}

/// A request path as a metric label: the query dropped, numbers and hex ids
/// replaced by `{id}` (bounded label values whatever the requests).
pub fn endpoint_template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|segment| {
            let is_id = !segment.is_empty()
                && (segment.bytes().all(|b| b.is_ascii_digit()) || segment.starts_with("0x"));
            if is_id {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[derive(Deserialize)]
struct DataEnvelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct DutiesEnvelope<T> {
    dependent_root: Root,
    data: Vec<T>,
}

impl BeaconNode {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Transport {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            http,
            position: 0,
            observer: None,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        let Some(observer) = &self.observer else {
            return self.send_unobserved(request).await;
        };
        let request = request.build().map_err(|e| Error::Transport {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let endpoint = endpoint_template(request.url().path());
        let started = std::time::Instant::now();
        let result = self
            .send_unobserved(reqwest::RequestBuilder::from_parts(
                self.http.clone(),
                request,
            ))
            .await;
        observer(&endpoint, self.position, started.elapsed(), result.is_err());
        result
    }

    async fn send_unobserved(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let response = request.send().await.map_err(|e| Error::Transport {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let mut message = body["message"]
            .as_str()
            .unwrap_or("(no message)")
            .to_string();
        if let Some(failures) = body["failures"].as_array() {
            for f in failures {
                message.push_str(&format!(
                    "; item {}: {}",
                    f["index"],
                    f["message"].as_str().unwrap_or("")
                ));
            }
        }
        Err(Error::Status {
            url: self.url.clone(),
            status,
            message,
        })
    }

    async fn json<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<T, Error> {
        let decode = |reason: String| Error::Decode {
            url: self.url.clone(),
            reason,
        };
        let bytes = response.bytes().await.map_err(|e| decode(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let response = self
            .send(self.http.get(format!("{}{path}", self.url)))
            .await?;
        self.json(response).await
    }

    async fn get_data<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.get::<DataEnvelope<T>>(path).await.map(|e| e.data)
    }

    pub async fn syncing(&self) -> Result<SyncStatus, Error> {
        self.get_data("/eth/v1/node/syncing").await
    }

    pub async fn genesis(&self) -> Result<Genesis, Error> {
        self.get_data("/eth/v1/beacon/genesis").await
    }

    pub async fn spec(&self) -> Result<ChainSpec, Error> {
        let data: Value = self.get_data("/eth/v1/config/spec").await?;
        ChainSpec::from_beacon_node_json(&data).map_err(|e| Error::Decode {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }

    /// Validators by pubkey or index (unknown ones are simply absent).
    pub async fn validators(&self, ids: &[String]) -> Result<Vec<ValidatorInfo>, Error> {
        let body = serde_json::json!({ "ids": ids });
        let response = self
            .send(
                self.http
                    .post(format!("{}/eth/v1/beacon/states/head/validators", self.url))
                    .json(&body),
            )
            .await?;
        self.json::<DataEnvelope<Vec<ValidatorInfo>>>(response)
            .await
            .map(|e| e.data)
    }

    pub async fn attester_duties(
        &self,
        epoch: Epoch,
        indices: &[u64],
    ) -> Result<Duties<AttesterDuty>, Error> {
        let body: Vec<String> = indices.iter().map(u64::to_string).collect();
        let response = self
            .send(
                self.http
                    .post(format!(
                        "{}/eth/v1/validator/duties/attester/{epoch}",
                        self.url
                    ))
                    .json(&body),
            )
            .await?;
        let envelope: DutiesEnvelope<AttesterDuty> = self.json(response).await?;
        Ok(Duties {
            dependent_root: envelope.dependent_root,
            duties: envelope.data,
        })
    }

    pub async fn proposer_duties(&self, epoch: Epoch) -> Result<Duties<ProposerDuty>, Error> {
        let envelope: DutiesEnvelope<ProposerDuty> = self
            .get(&format!("/eth/v1/validator/duties/proposer/{epoch}"))
            .await?;
        Ok(Duties {
            dependent_root: envelope.dependent_root,
            duties: envelope.data,
        })
    }

    pub async fn attestation_data(
        &self,
        slot: Slot,
        committee_index: u64,
    ) -> Result<AttestationData, Error> {
        self.get_data(&format!(
            "/eth/v1/validator/attestation_data?slot={slot}&committee_index={committee_index}"
        ))
        .await
    }

    /// The aggregate of the attestations the node saw for `data_root` (Electra on).
    pub async fn aggregate_attestation<P: Preset>(
        &self,
        data_root: Root,
        slot: Slot,
        committee_index: u64,
    ) -> Result<AttestationElectra<P>, Error> {
        self.get_data(&format!(
            "/eth/v2/validator/aggregate_attestation?attestation_data_root={data_root}&slot={slot}&committee_index={committee_index}"
        ))
        .await
    }

    /// The root of the node's head block (what sync committee messages sign).
    pub async fn head_root(&self) -> Result<Root, Error> {
        #[derive(Deserialize)]
        struct RootData {
            root: Root,
        }
        self.get_data::<RootData>("/eth/v1/beacon/blocks/head/root")
            .await
            .map(|d| d.root)
    }

    /// The contribution of a sync subcommittee for `beacon_block_root`.
    pub async fn sync_committee_contribution<P: Preset>(
        &self,
        slot: Slot,
        subcommittee_index: u64,
        beacon_block_root: Root,
    ) -> Result<SyncCommitteeContribution<P>, Error> {
        self.get_data(&format!(
            "/eth/v1/validator/sync_committee_contribution?slot={slot}&subcommittee_index={subcommittee_index}&beacon_block_root={beacon_block_root}"
        ))
        .await
    }

    /// Block production v3 (JSON): the fork and blindedness come from the response.
    pub async fn produce_block<P: Preset>(
        &self,
        slot: Slot,
        randao_reveal: &SignatureBytes,
        graffiti: &Graffiti,
    ) -> Result<ProducedBlock<P>, Error> {
        let body: Value = self
            .get(&format!(
                "/eth/v3/validator/blocks/{slot}?randao_reveal={randao_reveal}&graffiti={graffiti}"
            ))
            .await?;
        decode_produced_block(body).map_err(|reason| Error::Decode {
            url: self.url.clone(),
            reason,
        })
    }

    /// The canonical block of `slot` (`GET /eth/v2/beacon/blocks/{slot}`,
    /// JSON); `None` when the slot has none (404).
    pub async fn block<P: Preset>(&self, slot: Slot) -> Result<Option<VersionedBlock<P>>, Error> {
        let mut body: Value = match self.get(&format!("/eth/v2/beacon/blocks/{slot}")).await {
            Ok(body) => body,
            Err(Error::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let decode = |reason: String| Error::Decode {
            url: self.url.clone(),
            reason,
        };
        let fork: ForkName = body["version"]
            .as_str()
            .ok_or_else(|| decode("no version in the block answer".into()))?
            .parse()
            .map_err(|e| decode(format!("version: {e}")))?;
        let mut data = take_field(&mut body, "data");
        VersionedBlock::from_json_value(fork, take_field(&mut data, "message"))
            .map(Some)
            .map_err(|e| decode(e.to_string()))
    }

    /// The sizes of the beacon committees of `slot`, by committee index
    /// (`GET /eth/v1/beacon/states/head/committees?slot=`).
    pub async fn committee_sizes(&self, slot: Slot) -> Result<Vec<u64>, Error> {
        #[derive(Deserialize)]
        struct Committee {
            #[serde(with = "serde_utils::quoted_u64")]
            index: u64,
            validators: Vec<Value>,
        }
        let committees: Vec<Committee> = self
            .get_data(&format!(
                "/eth/v1/beacon/states/head/committees?slot={slot}"
            ))
            .await?;
        let count = committees.len();
        let mut sizes = vec![0; count];
        for c in committees {
            let size = sizes
                .get_mut(c.index as usize)
                .ok_or_else(|| Error::Decode {
                    url: self.url.clone(),
                    reason: format!(
                        "committee index {} in an answer of {count} committees",
                        c.index
                    ),
                })?;
            *size = c.validators.len() as u64;
        }
        Ok(sizes)
    }

    /// Attestations to the pool: `SingleAttestation`s from Electra,
    /// single-committee `Attestation`s before; `fork` goes in the header.
    pub async fn submit_attestations<T: serde::Serialize>(
        &self,
        fork: ForkName,
        items: &[T],
    ) -> Result<(), Error> {
        self.post_versioned(
            "/eth/v2/beacon/pool/attestations",
            fork,
            &serde_json::to_value(items).unwrap_or_default(),
        )
        .await
    }

    pub async fn submit_voluntary_exit(&self, exit: &SignedVoluntaryExit) -> Result<(), Error> {
        self.send(
            self.http
                .post(format!("{}/eth/v1/beacon/pool/voluntary_exits", self.url))
                .json(exit),
        )
        .await
        .map(|_| ())
    }

    /// Publishes a signed full block as Deneb+ `SignedBlockContents`, with its blobs.
    pub async fn publish_block<P: Preset>(
        &self,
        block: &VersionedBlock<P>,
        blobs: &BlobsBundle,
        signature: &SignatureBytes,
    ) -> Result<Publication, Error> {
        let body = serde_json::json!({
            "signed_block": {"message": block.to_json_value(), "signature": signature},
            "kzg_proofs": blobs.kzg_proofs,
            "blobs": blobs.blobs,
        });
        publication(
            self.post_versioned("/eth/v2/beacon/blocks", block.fork_name(), &body)
                .await,
        )
    }

    /// Publishes a signed blinded block; the beacon node fills in the payload from its builder.
    pub async fn publish_blinded_block<P: Preset>(
        &self,
        block: &VersionedBlindedBlock<P>,
        signature: &SignatureBytes,
    ) -> Result<Publication, Error> {
        let body = serde_json::json!({"message": block.to_json_value(), "signature": signature});
        publication(
            self.post_versioned("/eth/v2/beacon/blinded_blocks", block.fork_name(), &body)
                .await,
        )
    }

    /// The aggregate of the attestations the node saw for `data_root`
    /// before Electra (`/eth/v1`, the committee is in the data).
    pub async fn aggregate_attestation_deneb<P: Preset>(
        &self,
        data_root: Root,
        slot: Slot,
    ) -> Result<AttestationDeneb<P>, Error> {
        self.get_data(&format!(
            "/eth/v1/validator/aggregate_attestation?attestation_data_root={data_root}&slot={slot}"
        ))
        .await
    }

    /// Signed aggregates: `/eth/v2` with the fork header from Electra on,
    /// `/eth/v1` (Deneb's `SignedAggregateAndProof`) before.
    pub async fn submit_aggregates<T: serde::Serialize>(
        &self,
        fork: ForkName,
        items: &[T],
    ) -> Result<(), Error> {
        let body = serde_json::to_value(items).unwrap_or_default();
        if fork.electra_enabled() {
            self.post_versioned("/eth/v2/validator/aggregate_and_proofs", fork, &body)
                .await
        } else {
            self.post_json("/eth/v1/validator/aggregate_and_proofs", &body)
                .await
        }
    }

    pub async fn sync_duties(&self, epoch: Epoch, indices: &[u64]) -> Result<Vec<SyncDuty>, Error> {
        let body: Vec<String> = indices.iter().map(u64::to_string).collect();
        let response = self
            .send(
                self.http
                    .post(format!("{}/eth/v1/validator/duties/sync/{epoch}", self.url))
                    .json(&body),
            )
            .await?;
        self.json::<DataEnvelope<Vec<SyncDuty>>>(response)
            .await
            .map(|e| e.data)
    }

    pub async fn subscribe_beacon_committees(
        &self,
        items: &[BeaconCommitteeSubscription],
    ) -> Result<(), Error> {
        self.post_json(
            "/eth/v1/validator/beacon_committee_subscriptions",
            &serde_json::to_value(items).unwrap_or_default(),
        )
        .await
    }

    pub async fn subscribe_sync_committees(
        &self,
        items: &[SyncCommitteeSubscription],
    ) -> Result<(), Error> {
        self.post_json(
            "/eth/v1/validator/sync_committee_subscriptions",
            &serde_json::to_value(items).unwrap_or_default(),
        )
        .await
    }

    pub async fn prepare_beacon_proposer(
        &self,
        items: &[ProposerPreparation],
    ) -> Result<(), Error> {
        self.post_json(
            "/eth/v1/validator/prepare_beacon_proposer",
            &serde_json::to_value(items).unwrap_or_default(),
        )
        .await
    }

    /// Submits builder registrations; callers send at most
    /// [`REGISTRATION_BATCH_SIZE`] per request.
    pub async fn register_validators(
        &self,
        items: &[SignedValidatorRegistration],
    ) -> Result<(), Error> {
        self.post_json(
            "/eth/v1/validator/register_validator",
            &serde_json::to_value(items).unwrap_or_default(),
        )
        .await
    }

    pub async fn submit_sync_messages(&self, items: &[SyncCommitteeMessage]) -> Result<(), Error> {
        self.post_json(
            "/eth/v1/beacon/pool/sync_committees",
            &serde_json::to_value(items).unwrap_or_default(),
        )
        .await
    }

    pub async fn submit_contributions<P: Preset>(
        &self,
        items: &[SignedContributionAndProof<P>],
    ) -> Result<(), Error> {
        self.post_json(
            "/eth/v1/validator/contribution_and_proofs",
            &serde_json::to_value(items).unwrap_or_default(),
        )
        .await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<(), Error> {
        self.send(self.http.post(format!("{}{path}", self.url)).json(body))
            .await
            .map(|_| ())
    }

    async fn post_versioned(&self, path: &str, fork: ForkName, body: &Value) -> Result<(), Error> {
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .header("Eth-Consensus-Version", fork.as_str())
                .json(body),
        )
        .await
        .map(|_| ())
    }
}

/// A publication's result: a block the node already had is published.
fn publication(result: Result<(), Error>) -> Result<Publication, Error> {
    match result {
        Ok(()) => Ok(Publication::Accepted),
        Err(e) if e.is_block_already_known() => Ok(Publication::AlreadyKnown),
        Err(e) => Err(e),
    }
}

/// Several beacon nodes, tried in order until one answers.
#[derive(Debug, Clone)]
pub struct BeaconNodes {
    nodes: Vec<BeaconNode>,
}

impl BeaconNodes {
    pub fn new(urls: &[String], timeout: Duration) -> Result<Self, Error> {
        let nodes = urls
            .iter()
            .map(|u| BeaconNode::new(u, timeout))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nodes })
    }

    /// The same nodes, each telling `observer` of its requests.
    pub fn observed(mut self, observer: RequestObserver) -> Self {
        for (position, node) in self.nodes.iter_mut().enumerate() {
            node.position = position;
            node.observer = Some(observer.clone());
        }
        self
    }

    pub fn nodes(&self) -> &[BeaconNode] {
        &self.nodes
    }

    /// Runs `call` on each node in turn and returns the first success. A
    /// request the node refused (4xx) is returned as is: the next node would
    /// refuse it too.
    pub async fn first_success<'a, T, F, Fut>(&'a self, call: F) -> Result<T, Error>
    where
        F: Fn(&'a BeaconNode) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut errors = Vec::new();
        for node in &self.nodes {
            match call(node).await {
                Ok(value) => return Ok(value),
                Err(e) if e.is_request_refused() => return Err(e),
                Err(e) => errors.push(e),
            }
        }
        // One node: its own error (its status and text), not a wrapper
        // that reads like an outage.
        if errors.len() == 1 {
            if let Some(only) = errors.pop() {
                return Err(only);
            }
        }
        Err(Error::AllFailed(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `beacon_block_response` fuzz target: a block answer whose
    /// `data` is not an object panicked (indexing a JSON array by key).
    #[test]
    fn a_block_answer_of_the_wrong_shape_is_an_error_not_a_panic() {
        for body in [
            r#"{"data":[],"execution_optimistic":false,"finalized":false,"version":"deneb"}"#,
            r#"{"data":{"block":{}, "blobs": 7},"version":"fulu"}"#,
            r#"{"data":"x","version":"electra","execution_payload_blinded":true}"#,
            r#"[]"#,
            r#"{"version":"nonsense"}"#,
        ] {
            let value: Value = serde_json::from_str(body).unwrap();
            assert!(decode_produced_block::<Mainnet>(value).is_err(), "{body}");
        }
    }
}
