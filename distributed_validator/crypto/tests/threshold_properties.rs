//! Property tests: any `t` of `n` partial signatures combine to the signature
//! of the full key, and `t - 1` never do.

use dv_crypto::*;
use proptest::prelude::*;

/// (t, n) with n in 1..=10 and t in (n/2, n], plus a seed for choosing subsets.
fn params() -> impl Strategy<Value = (usize, usize, u64)> {
    (1usize..=10).prop_flat_map(|n| (n / 2 + 1..=n, Just(n), any::<u64>()))
}

/// A deterministic subset of `k` distinct positions out of `n`, from `seed`.
fn subset(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..n).collect();
    let mut state = seed | 1;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        positions.swap(i, (state % (i as u64 + 1)) as usize);
    }
    positions.truncate(k);
    positions
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_t_of_n_combine_to_the_full_signature((t, n, seed) in params(), msg in proptest::collection::vec(any::<u8>(), 0..64)) {
        let params = ThresholdParams::new(t, n).unwrap();
        let sk = SecretKey::random();
        let shares = split(&sk, params);
        let expected = sk.sign(&msg);
        let hashed = HashedMessage::new(&msg);

        let chosen: Vec<PartialSignature> =
            subset(n, t, seed).into_iter().map(|i| shares[i].sign_hashed(&hashed)).collect();
        for p in &chosen {
            prop_assert!(shares[(p.index - 1) as usize].public_share().verify(&msg, p));
        }
        let combined = combine_verified(&chosen, params, &sk.public_key(), &hashed).unwrap();
        prop_assert_eq!(combined, expected);
    }

    #[test]
    fn t_minus_one_never_combine((t, n, seed) in params()) {
        prop_assume!(t >= 2);
        let params = ThresholdParams::new(t, n).unwrap();
        let sk = SecretKey::random();
        let shares = split(&sk, params);
        let msg = b"duty";
        let partials: Vec<PartialSignature> =
            subset(n, t - 1, seed).into_iter().map(|i| shares[i].sign(msg)).collect();
        prop_assert_eq!(
            combine(&partials, params),
            Err(ThresholdError::NotEnoughShares { got: t - 1, need: t })
        );
        // Interpolating t-1 points as if the threshold were t-1 gives a different key.
        let lower = ThresholdParams::new(t - 1, n).unwrap();
        let wrong = combine(&partials, lower).unwrap();
        prop_assert!(!sk.public_key().verify(msg, &wrong));
    }
}
