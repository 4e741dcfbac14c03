//! A typed Beacon API client for the endpoints a validator uses, and
//! [`BeaconNodes`], which tries each configured beacon node in turn.
//!
//! Every error names the beacon node it came from and what went wrong
//! (transport, HTTP status with the node's message, or an undecodable body),
//! so a bad answer from outside is a clear log line, never a panic.

use dv_types::*;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

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
    #[error("no beacon node answered: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<Error>),
}

impl Error {
    /// A 4xx answer means the request itself was refused (e.g. an invalid
    /// signature): asking another node would not help.
    pub fn is_request_refused(&self) -> bool {
        matches!(self, Error::Status { status, .. } if (400..500).contains(status))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Genesis {
    #[serde(with = "serde_utils::quoted_u64")]
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
    pub genesis_fork_version: Version,
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

/// A block from `/eth/v3/validator/blocks/{slot}`, full or blinded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducedBlock<P: Preset> {
    Full(VersionedBlock<P>),
    Blinded(VersionedBlindedBlock<P>),
}

/// One beacon node.
#[derive(Debug, Clone)]
pub struct BeaconNode {
    url: String,
    http: reqwest::Client,
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
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
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
        let decode = |reason: String| Error::Decode {
            url: self.url.clone(),
            reason,
        };
        let fork: ForkName = body["version"]
            .as_str()
            .ok_or_else(|| decode("no version in block response".into()))?
            .parse()
            .map_err(decode)?;
        let blinded = body["execution_payload_blinded"].as_bool().unwrap_or(false);
        let mut data = body["data"].clone();
        if blinded {
            VersionedBlindedBlock::from_json_value(fork, data)
                .map(ProducedBlock::Blinded)
                .map_err(|e| decode(e.to_string()))
        } else {
            // From Deneb, full blocks come as BlockContents {block, kzg_proofs, blobs}.
            let block = data["block"].take();
            VersionedBlock::from_json_value(fork, block)
                .map(ProducedBlock::Full)
                .map_err(|e| decode(e.to_string()))
        }
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

    /// Publishes a signed full block (as Deneb+ `SignedBlockContents` without blobs).
    pub async fn publish_block<P: Preset>(
        &self,
        block: &VersionedBlock<P>,
        signature: &SignatureBytes,
    ) -> Result<(), Error> {
        let body = serde_json::json!({
            "signed_block": {"message": block.to_json_value(), "signature": signature},
            "kzg_proofs": [],
            "blobs": [],
        });
        self.post_versioned("/eth/v2/beacon/blocks", block.fork_name(), &body)
            .await
    }

    /// Publishes a signed blinded block; the beacon node fills in the payload from its builder.
    pub async fn publish_blinded_block<P: Preset>(
        &self,
        block: &VersionedBlindedBlock<P>,
        signature: &SignatureBytes,
    ) -> Result<(), Error> {
        let body = serde_json::json!({"message": block.to_json_value(), "signature": signature});
        self.post_versioned("/eth/v2/beacon/blinded_blocks", block.fork_name(), &body)
            .await
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
        Err(Error::AllFailed(errors))
    }
}
