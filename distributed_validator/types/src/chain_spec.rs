//! The runtime chain configuration (`/eth/v1/config/spec`), fork schedule,
//! domains and signing roots.
//!
//! Domain rules live here, in one place: most messages use the fork version at
//! the message's epoch; voluntary exits are pinned to Capella (EIP-7044);
//! deposits and builder registrations use the genesis fork version with a zero
//! genesis validators root.

use crate::containers::{ForkData, SigningData};
use crate::fork::ForkName;
use crate::primitives::*;
use serde_json::Value;
use std::collections::BTreeMap;
use tree_hash::TreeHash;

pub const FAR_FUTURE_EPOCH: Epoch = u64::MAX;

/// What a signature is for; selects the domain type and the fork rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainKind {
    BeaconProposer,
    BeaconAttester,
    Randao,
    Deposit,
    VoluntaryExit,
    SelectionProof,
    AggregateAndProof,
    SyncCommittee,
    SyncCommitteeSelectionProof,
    ContributionAndProof,
    ApplicationBuilder,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChainSpecError {
    #[error("chain spec field {field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("chain spec lacks {0}")]
    MissingField(&'static str),
    #[error("chain spec is not a JSON object (expected the `data` of /eth/v1/config/spec)")]
    NotAnObject,
    #[error("unknown preset {0:?} (mainnet and minimal are supported)")]
    UnknownPreset(String),
}

/// Fork versions and activation epochs, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkSchedule {
    pub genesis_fork_version: Version,
    /// `(fork, version, activation epoch)` for Altair onwards.
    pub forks: Vec<(ForkName, Version, Epoch)>,
}

impl ForkSchedule {
    pub fn fork_at_epoch(&self, epoch: Epoch) -> ForkName {
        self.forks
            .iter()
            .rev()
            .find(|(_, _, activation)| epoch >= *activation)
            .map(|(name, _, _)| *name)
            .unwrap_or(ForkName::Phase0)
    }

    pub fn version_of(&self, fork: ForkName) -> Version {
        self.forks
            .iter()
            .find(|(name, _, _)| *name == fork)
            .map(|(_, version, _)| *version)
            .unwrap_or(self.genesis_fork_version)
    }

    pub fn epoch_of(&self, fork: ForkName) -> Option<Epoch> {
        match fork {
            ForkName::Phase0 => Some(0),
            _ => self
                .forks
                .iter()
                .find(|(name, _, _)| *name == fork)
                .map(|(_, _, epoch)| *epoch)
                .filter(|epoch| *epoch != FAR_FUTURE_EPOCH),
        }
    }

    pub fn version_at_epoch(&self, epoch: Epoch) -> Version {
        self.version_of(self.fork_at_epoch(epoch))
    }
}

/// The parts of the chain configuration a validator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub config_name: String,
    pub preset_base: String,
    pub fork_schedule: ForkSchedule,
    pub slot_duration_ms: u64,
    pub slots_per_epoch: u64,
    /// Offsets within a slot, in basis points of the slot (ATTESTATION_DUE_BPS etc.;
    /// older specs express these as thirds of a slot via INTERVALS_PER_SLOT).
    pub attestation_due_bps: u64,
    pub aggregate_due_bps: u64,
    pub sync_message_due_bps: u64,
    pub contribution_due_bps: u64,
    pub epochs_per_sync_committee_period: u64,
    pub sync_committee_size: u64,
    pub sync_committee_subnet_count: u64,
    pub target_aggregators_per_committee: u64,
    pub target_aggregators_per_sync_subcommittee: u64,
    /// SHARD_COMMITTEE_PERIOD: epochs a validator must have been active
    /// before it may exit (dev chains often set it to 0).
    pub shard_committee_period: u64,
    pub domain_types: BTreeMap<&'static str, DomainType>,
}

const DOMAIN_FIELDS: [(DomainKind, &str, [u8; 4]); 11] = [
    (
        DomainKind::BeaconProposer,
        "DOMAIN_BEACON_PROPOSER",
        [0, 0, 0, 0],
    ),
    (
        DomainKind::BeaconAttester,
        "DOMAIN_BEACON_ATTESTER",
        [1, 0, 0, 0],
    ),
    (DomainKind::Randao, "DOMAIN_RANDAO", [2, 0, 0, 0]),
    (DomainKind::Deposit, "DOMAIN_DEPOSIT", [3, 0, 0, 0]),
    (
        DomainKind::VoluntaryExit,
        "DOMAIN_VOLUNTARY_EXIT",
        [4, 0, 0, 0],
    ),
    (
        DomainKind::SelectionProof,
        "DOMAIN_SELECTION_PROOF",
        [5, 0, 0, 0],
    ),
    (
        DomainKind::AggregateAndProof,
        "DOMAIN_AGGREGATE_AND_PROOF",
        [6, 0, 0, 0],
    ),
    (
        DomainKind::SyncCommittee,
        "DOMAIN_SYNC_COMMITTEE",
        [7, 0, 0, 0],
    ),
    (
        DomainKind::SyncCommitteeSelectionProof,
        "DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF",
        [8, 0, 0, 0],
    ),
    (
        DomainKind::ContributionAndProof,
        "DOMAIN_CONTRIBUTION_AND_PROOF",
        [9, 0, 0, 0],
    ),
    (
        DomainKind::ApplicationBuilder,
        "DOMAIN_APPLICATION_BUILDER",
        [0, 0, 0, 1],
    ),
];

const FORK_FIELDS: [(ForkName, &str, &str); 6] = [
    (ForkName::Altair, "ALTAIR_FORK_VERSION", "ALTAIR_FORK_EPOCH"),
    (
        ForkName::Bellatrix,
        "BELLATRIX_FORK_VERSION",
        "BELLATRIX_FORK_EPOCH",
    ),
    (
        ForkName::Capella,
        "CAPELLA_FORK_VERSION",
        "CAPELLA_FORK_EPOCH",
    ),
    (ForkName::Deneb, "DENEB_FORK_VERSION", "DENEB_FORK_EPOCH"),
    (
        ForkName::Electra,
        "ELECTRA_FORK_VERSION",
        "ELECTRA_FORK_EPOCH",
    ),
    (ForkName::Fulu, "FULU_FORK_VERSION", "FULU_FORK_EPOCH"),
];

fn default_domain_types() -> BTreeMap<&'static str, DomainType> {
    DOMAIN_FIELDS
        .iter()
        .map(|(_, name, bytes)| (*name, DomainType(*bytes)))
        .collect()
}

/// Fork versions `[a, 0, 0, suffix]` for a = 1.. as mainnet (suffix 0) and minimal (1) number them.
fn numbered_forks(suffix: u8, epochs: [Epoch; 6]) -> Vec<(ForkName, Version, Epoch)> {
    FORK_FIELDS
        .iter()
        .zip(epochs)
        .enumerate()
        .map(|(i, ((fork, _, _), epoch))| (*fork, Version([i as u8 + 1, 0, 0, suffix]), epoch))
        .collect()
}

impl ChainSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> Self {
        Self {
            config_name: "mainnet".into(),
            preset_base: "mainnet".into(),
            fork_schedule: ForkSchedule {
                genesis_fork_version: Version([0, 0, 0, 0]),
                forks: numbered_forks(0, [74240, 144896, 194048, 269568, 364032, 411392]),
            },
            slot_duration_ms: 12_000,
            slots_per_epoch: 32,
            attestation_due_bps: 3333,
            aggregate_due_bps: 6667,
            sync_message_due_bps: 3333,
            contribution_due_bps: 6667,
            epochs_per_sync_committee_period: 256,
            sync_committee_size: 512,
            sync_committee_subnet_count: 4,
            target_aggregators_per_committee: 16,
            target_aggregators_per_sync_subcommittee: 16,
            shard_committee_period: 256,
            domain_types: default_domain_types(),
        }
    }

    /// The minimal preset with every fork through Fulu active from genesis, as
    /// local dev chains run it (the spec's own minimal config leaves forks unscheduled).
    pub fn minimal() -> Self {
        Self {
            config_name: "minimal".into(),
            preset_base: "minimal".into(),
            fork_schedule: ForkSchedule {
                genesis_fork_version: Version([0, 0, 0, 1]),
                forks: numbered_forks(1, [0; 6]),
            },
            slot_duration_ms: 6_000,
            slots_per_epoch: 8,
            epochs_per_sync_committee_period: 8,
            sync_committee_size: 32,
            shard_committee_period: 64,
            ..Self::mainnet()
        }
    }

    /// Builds the spec from the `data` object of a beacon node's
    /// `/eth/v1/config/spec` (every value a string, as the Beacon API sends).
    ///
    /// Values the node does not report fall back to the preset named by
    /// `PRESET_BASE`, except fork epochs: a fork the node does not know is
    /// treated as unscheduled.
    pub fn from_beacon_node_json(data: &Value) -> Result<Self, ChainSpecError> {
        let map = data.as_object().ok_or(ChainSpecError::NotAnObject)?;
        let text = |key: &str| map.get(key).and_then(Value::as_str);
        let preset = text("PRESET_BASE").ok_or(ChainSpecError::MissingField("PRESET_BASE"))?;
        let mut spec = match preset {
            "mainnet" => Self::mainnet(),
            "minimal" => Self::minimal(),
            other => return Err(ChainSpecError::UnknownPreset(other.to_string())),
        };
        let uint = |key: &str| -> Result<Option<u64>, ChainSpecError> {
            match map.get(key) {
                None => Ok(None),
                Some(v) => {
                    let parsed = match v {
                        Value::String(s) => s.parse::<u64>().ok(),
                        Value::Number(n) => n.as_u64(),
                        _ => None,
                    };
                    parsed
                        .map(Some)
                        .ok_or_else(|| ChainSpecError::InvalidField {
                            field: key.to_string(),
                            reason: format!("expected an unsigned integer, got {v}"),
                        })
                }
            }
        };
        let four_bytes = |key: &str| -> Result<Option<[u8; 4]>, ChainSpecError> {
            match map.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(|s| s.parse::<Version>().ok())
                    .map(|v| Some(v.0))
                    .ok_or_else(|| ChainSpecError::InvalidField {
                        field: key.to_string(),
                        reason: format!("expected 4 bytes of 0x-hex, got {v}"),
                    }),
            }
        };

        spec.config_name = text("CONFIG_NAME").unwrap_or(preset).to_string();
        spec.preset_base = preset.to_string();
        if let Some(v) = four_bytes("GENESIS_FORK_VERSION")? {
            spec.fork_schedule.genesis_fork_version = Version(v);
        }
        for (fork, version_key, epoch_key) in FORK_FIELDS {
            let entry = spec
                .fork_schedule
                .forks
                .iter_mut()
                .find(|(name, _, _)| *name == fork)
                .ok_or(ChainSpecError::MissingField("fork schedule entry"))?;
            if let Some(v) = four_bytes(version_key)? {
                entry.1 = Version(v);
            }
            entry.2 = uint(epoch_key)?.unwrap_or(FAR_FUTURE_EPOCH);
        }
        spec.slot_duration_ms = match (uint("SLOT_DURATION_MS")?, uint("SECONDS_PER_SLOT")?) {
            (Some(ms), _) => ms,
            (None, Some(s)) => s.saturating_mul(1000),
            (None, None) => return Err(ChainSpecError::MissingField("SECONDS_PER_SLOT")),
        };
        if spec.slot_duration_ms == 0 {
            return Err(ChainSpecError::InvalidField {
                field: "SECONDS_PER_SLOT".into(),
                reason: "must be positive".into(),
            });
        }
        spec.slots_per_epoch =
            uint("SLOTS_PER_EPOCH")?.ok_or(ChainSpecError::MissingField("SLOTS_PER_EPOCH"))?;
        if spec.slots_per_epoch == 0 {
            return Err(ChainSpecError::InvalidField {
                field: "SLOTS_PER_EPOCH".into(),
                reason: "must be positive".into(),
            });
        }
        // Older nodes give INTERVALS_PER_SLOT (duties at 1/3 and 2/3 of the slot).
        if let Some(intervals) = uint("INTERVALS_PER_SLOT")?.filter(|i| *i > 0) {
            spec.attestation_due_bps = 10_000 / intervals;
            spec.sync_message_due_bps = 10_000 / intervals;
            spec.aggregate_due_bps = 2 * 10_000 / intervals;
            spec.contribution_due_bps = 2 * 10_000 / intervals;
        }
        for (field, key) in [
            (&mut spec.attestation_due_bps, "ATTESTATION_DUE_BPS"),
            (&mut spec.aggregate_due_bps, "AGGREGATE_DUE_BPS"),
            (&mut spec.sync_message_due_bps, "SYNC_MESSAGE_DUE_BPS"),
            (&mut spec.contribution_due_bps, "CONTRIBUTION_DUE_BPS"),
            (
                &mut spec.epochs_per_sync_committee_period,
                "EPOCHS_PER_SYNC_COMMITTEE_PERIOD",
            ),
            (&mut spec.sync_committee_size, "SYNC_COMMITTEE_SIZE"),
            (
                &mut spec.sync_committee_subnet_count,
                "SYNC_COMMITTEE_SUBNET_COUNT",
            ),
            (
                &mut spec.target_aggregators_per_committee,
                "TARGET_AGGREGATORS_PER_COMMITTEE",
            ),
            (
                &mut spec.target_aggregators_per_sync_subcommittee,
                "TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE",
            ),
            (&mut spec.shard_committee_period, "SHARD_COMMITTEE_PERIOD"),
        ] {
            if let Some(v) = uint(key)? {
                *field = v;
            }
        }
        for (_, name, _) in DOMAIN_FIELDS {
            if let Some(v) = four_bytes(name)? {
                spec.domain_types.insert(name, DomainType(v));
            }
        }
        Ok(spec)
    }

    /// The `data` of `/eth/v1/config/spec` for this spec (values as strings),
    /// the inverse of [`ChainSpec::from_beacon_node_json`].
    pub fn to_beacon_node_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        let mut put = |key: &str, value: String| {
            map.insert(key.to_string(), Value::String(value));
        };
        put("PRESET_BASE", self.preset_base.clone());
        put("CONFIG_NAME", self.config_name.clone());
        put(
            "GENESIS_FORK_VERSION",
            self.fork_schedule.genesis_fork_version.to_hex(),
        );
        for (fork, version_key, epoch_key) in FORK_FIELDS {
            put(version_key, self.fork_schedule.version_of(fork).to_hex());
            let epoch = self
                .fork_schedule
                .epoch_of(fork)
                .unwrap_or(FAR_FUTURE_EPOCH);
            put(epoch_key, epoch.to_string());
        }
        put(
            "SECONDS_PER_SLOT",
            (self.slot_duration_ms / 1000).to_string(),
        );
        put("SLOT_DURATION_MS", self.slot_duration_ms.to_string());
        put("SLOTS_PER_EPOCH", self.slots_per_epoch.to_string());
        put("ATTESTATION_DUE_BPS", self.attestation_due_bps.to_string());
        put("AGGREGATE_DUE_BPS", self.aggregate_due_bps.to_string());
        put(
            "SYNC_MESSAGE_DUE_BPS",
            self.sync_message_due_bps.to_string(),
        );
        put(
            "CONTRIBUTION_DUE_BPS",
            self.contribution_due_bps.to_string(),
        );
        put(
            "EPOCHS_PER_SYNC_COMMITTEE_PERIOD",
            self.epochs_per_sync_committee_period.to_string(),
        );
        put("SYNC_COMMITTEE_SIZE", self.sync_committee_size.to_string());
        put(
            "SYNC_COMMITTEE_SUBNET_COUNT",
            self.sync_committee_subnet_count.to_string(),
        );
        put(
            "TARGET_AGGREGATORS_PER_COMMITTEE",
            self.target_aggregators_per_committee.to_string(),
        );
        put(
            "TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE",
            self.target_aggregators_per_sync_subcommittee.to_string(),
        );
        put(
            "SHARD_COMMITTEE_PERIOD",
            self.shard_committee_period.to_string(),
        );
        for (_, name, _) in DOMAIN_FIELDS {
            if let Some(domain) = self.domain_types.get(name) {
                put(name, domain.to_hex());
            }
        }
        Value::Object(map)
    }

    pub fn epoch_of_slot(&self, slot: Slot) -> Epoch {
        slot / self.slots_per_epoch
    }

    pub fn start_slot_of_epoch(&self, epoch: Epoch) -> Slot {
        epoch.saturating_mul(self.slots_per_epoch)
    }

    pub fn fork_at_slot(&self, slot: Slot) -> ForkName {
        self.fork_schedule.fork_at_epoch(self.epoch_of_slot(slot))
    }

    pub fn domain_type(&self, kind: DomainKind) -> DomainType {
        let (_, name, default) = DOMAIN_FIELDS
            .iter()
            .find(|(k, _, _)| *k == kind)
            .copied()
            .unwrap_or((kind, "", [0; 4]));
        self.domain_types
            .get(name)
            .copied()
            .unwrap_or(DomainType(default))
    }

    /// The domain for a message of `kind` at `epoch`, with the fork rules of the spec.
    pub fn domain(&self, kind: DomainKind, epoch: Epoch, genesis_validators_root: Root) -> Domain {
        let domain_type = self.domain_type(kind);
        let schedule = &self.fork_schedule;
        match kind {
            DomainKind::Deposit | DomainKind::ApplicationBuilder => {
                compute_domain(domain_type, schedule.genesis_fork_version, Root::ZERO)
            }
            // EIP-7044: exits signed from Deneb on use the Capella fork version forever.
            DomainKind::VoluntaryExit if schedule.fork_at_epoch(epoch) >= ForkName::Deneb => {
                compute_domain(
                    domain_type,
                    schedule.version_of(ForkName::Capella),
                    genesis_validators_root,
                )
            }
            _ => compute_domain(
                domain_type,
                schedule.version_at_epoch(epoch),
                genesis_validators_root,
            ),
        }
    }
}

pub fn compute_fork_data_root(current_version: Version, genesis_validators_root: Root) -> Root {
    ForkData {
        current_version,
        genesis_validators_root,
    }
    .tree_hash_root()
}

/// `domain_type ++ fork_data_root[..28]`.
pub fn compute_domain(
    domain_type: DomainType,
    fork_version: Version,
    genesis_validators_root: Root,
) -> Domain {
    let fork_data_root = compute_fork_data_root(fork_version, genesis_validators_root);
    let mut domain = [0u8; 32];
    domain[..4].copy_from_slice(&domain_type.0);
    domain[4..].copy_from_slice(&fork_data_root[..28]);
    Domain::from(domain)
}

/// The root a BLS signature over `object` in `domain` signs.
pub fn compute_signing_root<T: TreeHash + ?Sized>(object: &T, domain: Domain) -> Root {
    SigningData {
        object_root: object.tree_hash_root(),
        domain,
    }
    .tree_hash_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_spec(dir: &str) -> Value {
        let path = format!(
            "{}/../../../shared/beacon-api-samples/{dir}/spec.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v["data"].take()
    }

    #[test]
    fn parses_lodestar_minimal_spec() {
        let spec = ChainSpec::from_beacon_node_json(&sample_spec("lodestar-deneb")).unwrap();
        assert_eq!(spec.preset_base, "minimal");
        assert_eq!(spec.slot_duration_ms, 2000);
        assert_eq!(spec.slots_per_epoch, 8);
        assert_eq!(
            spec.fork_schedule.genesis_fork_version,
            Version([0, 0, 0, 1])
        );
        assert_eq!(spec.fork_at_slot(0), ForkName::Deneb);
        assert_eq!(spec.fork_schedule.epoch_of(ForkName::Electra), None);
        let electra =
            ChainSpec::from_beacon_node_json(&sample_spec("lodestar-electra-prefinal")).unwrap();
        assert_eq!(electra.fork_at_slot(0), ForkName::Electra);
        assert_eq!(
            electra.fork_schedule.version_at_epoch(3),
            Version([5, 0, 0, 1])
        );
        assert_eq!(
            electra.domain_type(DomainKind::ApplicationBuilder),
            DomainType([0, 0, 0, 1])
        );
    }

    #[test]
    fn bad_spec_values_name_the_field() {
        let mut v = sample_spec("lodestar-deneb");
        v["SLOTS_PER_EPOCH"] = Value::String("eight".into());
        let err = ChainSpec::from_beacon_node_json(&v).unwrap_err();
        assert!(err.to_string().contains("SLOTS_PER_EPOCH"), "{err}");
        v["SLOTS_PER_EPOCH"] = Value::String("8".into());
        v["DENEB_FORK_VERSION"] = Value::String("0x0400".into());
        let err = ChainSpec::from_beacon_node_json(&v).unwrap_err();
        assert!(err.to_string().contains("DENEB_FORK_VERSION"), "{err}");
        assert_eq!(
            ChainSpec::from_beacon_node_json(&Value::Null),
            Err(ChainSpecError::NotAnObject)
        );
    }

    #[test]
    fn beacon_node_json_round_trips() {
        for spec in [ChainSpec::mainnet(), ChainSpec::minimal()] {
            assert_eq!(
                ChainSpec::from_beacon_node_json(&spec.to_beacon_node_json()).unwrap(),
                spec
            );
        }
    }

    #[test]
    fn mainnet_fork_schedule_and_domains() {
        let spec = ChainSpec::mainnet();
        assert_eq!(spec.fork_schedule.fork_at_epoch(269567), ForkName::Capella);
        assert_eq!(spec.fork_schedule.fork_at_epoch(364032), ForkName::Electra);
        assert_eq!(spec.fork_schedule.fork_at_epoch(u64::MAX), ForkName::Fulu);
        let gvr = Root::repeat_byte(7);
        // Exits after Deneb use the Capella version.
        let exit = spec.domain(DomainKind::VoluntaryExit, 400_000, gvr);
        assert_eq!(
            exit,
            compute_domain(DomainType([4, 0, 0, 0]), Version([3, 0, 0, 0]), gvr)
        );
        // Builder registrations ignore the genesis validators root.
        let builder = spec.domain(DomainKind::ApplicationBuilder, 400_000, gvr);
        assert_eq!(
            builder,
            compute_domain(DomainType([0, 0, 0, 1]), Version([0; 4]), Root::ZERO)
        );
        let attester = spec.domain(DomainKind::BeaconAttester, 400_000, gvr);
        assert_eq!(&attester[..4], &[1, 0, 0, 0]);
        assert_eq!(
            &attester[4..],
            &compute_fork_data_root(Version([5, 0, 0, 0]), gvr)[..28]
        );
    }
}
