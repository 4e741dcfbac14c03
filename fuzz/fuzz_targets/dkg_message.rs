//! A peer's key-generation ceremony message, as operator 0 of a 4-operator
//! ceremony takes it from operator 1, in the hello round or in the deal
//! round (after every hello): it is refused or taken, never a panic. The
//! first byte picks the round.
#![no_main]
use dv_dkg::definition::{Definition, DefinitionOperator, DefinitionOptions};
use dv_dkg::Ceremony;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Operator 0's ceremony before any message, and after every hello.
fn templates() -> &'static (Ceremony, Ceremony) {
    static TEMPLATES: OnceLock<(Ceremony, Ceremony)> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let keys: Vec<libp2p_identity::Keypair> = (0..4)
            .map(|_| libp2p_identity::Keypair::generate_ed25519())
            .collect();
        let operators = keys
            .iter()
            .enumerate()
            .map(|(i, k)| DefinitionOperator {
                peer_id: k.public().to_peer_id().to_base58(),
                address: format!("/ip4/127.0.0.1/tcp/{}", 14000 + i),
            })
            .collect();
        let options = DefinitionOptions {
            name: "fuzz".into(),
            operators,
            num_validators: 2,
            threshold: None,
            network: "minimal".into(),
            fork_version: dv_types::Version([0, 0, 0, 1]),
            withdrawal_address: dv_types::ExecutionAddress::repeat_byte(1),
            fee_recipient: dv_types::ExecutionAddress::repeat_byte(2),
            gas_limit: 36_000_000,
            compounding: false,
            deposit_amounts: None,
        };
        let definition = Definition::create(options, &keys[0]).expect("a valid definition");
        let mut all: Vec<Ceremony> = keys
            .iter()
            .map(|k| Ceremony::new(definition.clone(), k.clone()).expect("an operator"))
            .collect();
        let fresh = all[0].clone();
        let hellos: Vec<Vec<u8>> = all.iter_mut().map(|c| c.start().expect("hello")).collect();
        for (from, hello) in hellos.iter().enumerate().skip(1) {
            all[0].receive(from, hello).expect("a hello");
        }
        (fresh, all.swap_remove(0))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((pick, message)) = data.split_first() else {
        return;
    };
    let (fresh, dealing) = templates();
    let mut ceremony = if pick % 2 == 0 { fresh.clone() } else { dealing.clone() };
    let _ = ceremony.receive(1, message);
});
