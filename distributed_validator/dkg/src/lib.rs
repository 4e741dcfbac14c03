//! Distributed key generation: operators who each hold only their own p2p
//! key agree on a cluster definition and run a ceremony that leaves each of
//! them its key shares, the cluster lock, deposit data and builder
//! registrations, without any party ever holding a whole validator key.

pub mod ceremony;
pub mod definition;
pub mod deposit;
pub mod message;
pub mod output;
pub mod run;

pub use ceremony::{Ceremony, CeremonyError, Outcome};
pub use definition::{Definition, DefinitionBody, DefinitionOperator, DefinitionOptions};
