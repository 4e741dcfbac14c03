//! QBFT consensus for the distributed validator: a pure state machine per
//! instance (no I/O, no clock) and a deterministic, seeded fault simulator
//! that checks agreement, validity and termination.

pub mod engine;
pub mod message;
pub mod simulator;

pub use engine::{
    default_leader, Action, Config, Instance, LeaderFn, Reject, RoundTiming, ValidityFn,
    DEFAULT_MAX_ROUND,
};
pub use message::{
    value_hash, Authenticator, InstanceId, Message, MsgKind, SignedMessage, Value, ValueHash,
};
