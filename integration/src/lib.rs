//! A strict simulated beacon chain (the judge of the end-to-end tests) and,
//! later, the end-to-end cluster tests themselves.

pub mod chain;
pub mod server;

pub use chain::Chain;
pub use server::{router, AppState};
