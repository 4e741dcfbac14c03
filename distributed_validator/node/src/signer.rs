//! The signer stage: this node's partial signatures with its key shares.
//! Where all validators sign one message (post-Electra attestations), the
//! message is hashed to G2 once for all of them; the signatures are made on
//! all cores.

use dv_crypto::{par_map, HashedMessage, PartialSignature, SecretShare};
use dv_types::{PublicKeyBytes, Root};
use std::collections::HashMap;

/// This node's shares, by validator public key.
pub struct Signer {
    shares: HashMap<PublicKeyBytes, SecretShare>,
}

impl Signer {
    pub fn new(shares: HashMap<PublicKeyBytes, SecretShare>) -> Self {
        Self { shares }
    }

    /// Partial signatures over one signing root for each validator given that this node holds.
    pub fn sign_root(
        &self,
        root: Root,
        validators: &[PublicKeyBytes],
    ) -> Vec<(PublicKeyBytes, PartialSignature)> {
        let hashed = HashedMessage::new(root.as_slice());
        let held: Vec<(PublicKeyBytes, &SecretShare)> = validators
            .iter()
            .filter_map(|v| self.shares.get(v).map(|share| (*v, share)))
            .collect();
        par_map(&held, |(v, share)| (*v, share.sign_hashed(&hashed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dv_crypto::{split, SecretKey, ThresholdParams};

    #[test]
    fn signs_only_for_held_validators_with_verifiable_partials() {
        let params = ThresholdParams::new(3, 4).unwrap();
        let sk = SecretKey::random();
        let share = split(&sk, params).remove(2);
        let held = PublicKeyBytes(sk.public_key().to_bytes());
        let signer = Signer::new(HashMap::from([(held, share.clone())]));
        let root = Root::repeat_byte(4);
        let out = signer.sign_root(root, &[held, PublicKeyBytes([9; 48])]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.index, 3);
        assert!(share.public_share().verify(root.as_slice(), &out[0].1));
    }
}
