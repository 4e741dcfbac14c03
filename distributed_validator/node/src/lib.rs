//! The duty pipeline of a distributed validator node, one module per stage
//! (the layout of ARCHITECTURE.md):
//!
//! - [`scheduler`]: slot clock and the cluster's duties from the beacon node;
//! - [`services`]: the built-in validator's duty services (fetcher and
//!   broadcaster around the signing seam);
//! - [`validator_store`]: the signing seam (Lighthouse's `ValidatorStore`
//!   operations), which runs consensus, the [`decided`] store's slashing
//!   record and the [`signer`] behind each call;
//! - [`workflow`]: consensus instances ([`consensus`] wire format), with the
//!   partial-signature exchange and combiner ([`parsig`]) run beside them as
//!   a task of their own;
//! - the Beacon API served to a validator client run with `--distributed`
//!   (middleware mode) is the crate `dv_validator_api`, one more input of
//!   the same pipeline (through [`validator_store::DvValidatorStore`]);
//! - [`aggregation`]: the aggregation duties' definitions (selection,
//!   aggregate shapes per fork, validity predicates), used by both attachments;
//! - [`exits`]: voluntary exits, which operators sign when they choose:
//!   pending partials on disk, offered to the peers once an epoch (both attachments);
//! - [`keys`]: the lock's keys and this node's shares on disk;
//! - [`tracker`]: what became of each duty (failure reasons, inclusion on
//!   chain); [`metrics`], [`health`] and the [`status_page`] show it.
//!
//! Everything is wired together for `dvnode run` in one place, the
//! binary's `runtime.rs`.

pub mod aggregation;
pub mod consensus;
pub mod cpu;
pub mod decided;
pub mod duty;
pub mod exchange;
pub mod exits;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod parsig;
pub mod scheduler;
pub mod services;
pub mod signer;
pub mod status_page;
pub mod tracker;
pub mod validator_store;
pub mod workflow;
