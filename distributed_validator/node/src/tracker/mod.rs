//! What became of each duty: the failure-reason taxonomy ([`Reason`]) and
//! the inclusion of submitted duties on chain ([`inclusion`]).

pub mod inclusion;
mod reason;

pub use inclusion::InclusionChecker;
pub use reason::Reason;
