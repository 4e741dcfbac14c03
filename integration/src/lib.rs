//! Test fixtures: a strict simulated beacon chain (the judge of the
//! end-to-end tests) and a validator-client simulator for middleware mode.

pub mod chain;
pub mod committees;
pub mod genesis;
pub mod server;
pub mod ssz_edge;
pub mod validator_client;
pub mod verify;

pub use chain::Chain;
pub use server::{router, AppState};
