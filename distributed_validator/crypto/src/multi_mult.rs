//! `Σ k_i·P_i` over a few G2 points in one pass (Straus' method with width-5
//! NAF digits): one chain of about 255 doublings shared by all points,
//! instead of one chain per point. For the 3 to 7 partial signatures of a
//! combination this does about a third less work than multiplying each
//! point on its own.
//!
//! Variable time: for public inputs only (partial signatures that
//! travelled the network and Lagrange coefficients computed from share
//! indices), never for secret scalars.

use blst::{blst_p2, blst_p2_add_or_double, blst_p2_cneg, blst_p2_double};

/// Digit width: odd digits in -15..=15, 8 precomputed multiples per point.
const WIDTH: u32 = 5;
const TABLE: usize = 1 << (WIDTH - 2);

/// `Σ scalars[i]·points[i]`, scalars as 32-byte little-endian integers.
pub(crate) fn multi_mult_vartime(points: &[blst_p2], scalars: &[[u8; 32]]) -> blst_p2 {
    let tables: Vec<[blst_p2; TABLE]> = points.iter().map(odd_multiples).collect();
    let digits: Vec<Vec<i8>> = scalars.iter().map(naf).collect();
    let top = digits.iter().map(Vec::len).max().unwrap_or(0);
    let mut acc = blst_p2::default(); // Z = 0: the point at infinity.
    let acc_ptr: *mut blst_p2 = &mut acc;
    for bit in (0..top).rev() {
        // SAFETY: valid points; blst allows the output to alias an input.
        unsafe { blst_p2_double(acc_ptr, acc_ptr) };
        for (table, digits) in tables.iter().zip(&digits) {
            let d = digits.get(bit).copied().unwrap_or(0);
            if d == 0 {
                continue;
            }
            let mut term = table[(d.unsigned_abs() as usize - 1) / 2];
            // SAFETY: as above.
            unsafe {
                if d < 0 {
                    blst_p2_cneg(&mut term, true);
                }
                blst_p2_add_or_double(acc_ptr, acc_ptr, &term);
            }
        }
    }
    acc
}

/// `P, 3P, 5P, ..., 15P`.
fn odd_multiples(point: &blst_p2) -> [blst_p2; TABLE] {
    let mut table = [*point; TABLE];
    let mut twice = blst_p2::default();
    // SAFETY: valid points in and out.
    unsafe {
        blst_p2_double(&mut twice, point);
        for i in 1..TABLE {
            let previous = table[i - 1];
            blst_p2_add_or_double(&mut table[i], &previous, &twice);
        }
    }
    table
}

/// The width-5 non-adjacent form of a 256-bit little-endian integer, least
/// significant digit first: every non-zero digit odd, in -15..=15, and
/// followed by at least four zeros.
fn naf(scalar: &[u8; 32]) -> Vec<i8> {
    // Five limbs: subtracting a negative digit can carry past bit 255.
    let mut k = [0u64; 5];
    for (limb, bytes) in k.iter_mut().zip(scalar.chunks(8)) {
        let mut le = [0u8; 8];
        le.copy_from_slice(bytes);
        *limb = u64::from_le_bytes(le);
    }
    let window = 1i64 << WIDTH;
    let mut digits = Vec::with_capacity(257);
    while k.iter().any(|l| *l != 0) {
        let mut digit = 0i64;
        if k[0] & 1 == 1 {
            digit = (k[0] & (window as u64 - 1)) as i64;
            if digit >= window / 2 {
                digit -= window;
            }
            if digit > 0 {
                sub_small(&mut k, digit as u64);
            } else {
                add_small(&mut k, digit.unsigned_abs());
            }
        }
        digits.push(digit as i8);
        shift_right_one(&mut k);
    }
    digits
}

fn sub_small(k: &mut [u64; 5], v: u64) {
    let mut borrow = v;
    for limb in k.iter_mut() {
        let (r, under) = limb.overflowing_sub(borrow);
        *limb = r;
        borrow = u64::from(under);
        if borrow == 0 {
            break;
        }
    }
}

fn add_small(k: &mut [u64; 5], v: u64) {
    let mut carry = v;
    for limb in k.iter_mut() {
        let (r, over) = limb.overflowing_add(carry);
        *limb = r;
        carry = u64::from(over);
        if carry == 0 {
            break;
        }
    }
}

fn shift_right_one(k: &mut [u64; 5]) {
    for i in 0..5 {
        let high = if i + 1 < 5 { k[i + 1] << 63 } else { 0 };
        k[i] = (k[i] >> 1) | high;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    fn value_of(digits: &[i8]) -> num_check::Wide {
        num_check::Wide::from_digits(digits)
    }

    /// Enough big-integer arithmetic to check that NAF digits sum back to
    /// the scalar (as signed 320-bit values).
    mod num_check {
        #[derive(Debug, PartialEq, Eq)]
        pub struct Wide(pub [u64; 5]);

        impl Wide {
            pub fn from_bytes(b: &[u8; 32]) -> Self {
                let mut k = [0u64; 5];
                for (limb, bytes) in k.iter_mut().zip(b.chunks(8)) {
                    *limb = u64::from_le_bytes(bytes.try_into().unwrap());
                }
                Wide(k)
            }

            pub fn from_digits(digits: &[i8]) -> Self {
                // Horner from the most significant digit: v = 2v + d.
                let mut v = [0u64; 5];
                for d in digits.iter().rev() {
                    let mut carry = 0;
                    for limb in v.iter_mut() {
                        let next = *limb >> 63;
                        *limb = (*limb << 1) | carry;
                        carry = next;
                    }
                    if *d >= 0 {
                        super::add_small(&mut v, *d as u64);
                    } else {
                        super::sub_small(&mut v, d.unsigned_abs() as u64);
                    }
                }
                Wide(v)
            }
        }
    }

    fn g2_point(seed: u8) -> blst_p2 {
        let affine = crate::bls::HashedMessage::new(&[seed]).affine();
        let mut p = blst_p2::default();
        // SAFETY: valid point in and out.
        unsafe { blst::blst_p2_from_affine(&mut p, &affine) };
        p
    }

    fn one_by_one(points: &[blst_p2], scalars: &[[u8; 32]]) -> blst_p2 {
        let mut sum = blst_p2::default();
        let sum_ptr: *mut blst_p2 = &mut sum;
        for (p, k) in points.iter().zip(scalars) {
            let mut term = blst_p2::default();
            // SAFETY: valid points and 32-byte scalars; blst allows aliasing.
            unsafe {
                blst::blst_p2_mult(&mut term, p, k.as_ptr(), 256);
                blst_p2_add_or_double(sum_ptr, sum_ptr, &term);
            }
        }
        sum
    }

    #[test]
    fn agrees_with_blst_point_by_point() {
        let mut rng = rand::thread_rng();
        let mut scalar = |fill: Option<u8>| {
            let mut s = [0u8; 32];
            match fill {
                Some(b) => s[0] = b,
                None => rng.fill_bytes(&mut s),
            }
            s
        };
        // The group order minus one, little endian.
        let mut r_minus_1 = [0u8; 32];
        r_minus_1.copy_from_slice(&hex_le(
            "73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000000",
        ));
        for n in 1..=7 {
            let points: Vec<blst_p2> = (0..n).map(|i| g2_point(i as u8 + 10 * n as u8)).collect();
            let mut scalars: Vec<[u8; 32]> = (0..n).map(|_| scalar(None)).collect();
            let want = one_by_one(&points, &scalars);
            let got = multi_mult_vartime(&points, &scalars);
            // SAFETY: valid points.
            assert!(unsafe { blst::blst_p2_is_equal(&got, &want) }, "{n} points");
            // Edge scalars: zero, one, r - 1.
            scalars[0] = scalar(Some(0));
            scalars[n - 1] = r_minus_1;
            if n > 2 {
                scalars[1] = scalar(Some(1));
            }
            let want = one_by_one(&points, &scalars);
            let got = multi_mult_vartime(&points, &scalars);
            // SAFETY: valid points.
            assert!(
                unsafe { blst::blst_p2_is_equal(&got, &want) },
                "{n} points, edges"
            );
        }
        // The same point twice (the sum then doubles inside the loop).
        let p = g2_point(1);
        let k = scalar(None);
        let got = multi_mult_vartime(&[p, p], &[k, k]);
        // SAFETY: valid points.
        assert!(unsafe { blst::blst_p2_is_equal(&got, &one_by_one(&[p, p], &[k, k])) });
    }

    /// Big-endian hex to little-endian bytes.
    fn hex_le(be: &str) -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..be.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&be[i..i + 2], 16).unwrap())
            .collect();
        bytes.reverse();
        bytes
    }

    #[test]
    fn naf_digits_are_odd_sparse_and_sum_to_the_scalar() {
        let mut rng = rand::thread_rng();
        let mut cases = vec![[0u8; 32], [0xff; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }];
        for _ in 0..200 {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            cases.push(s);
        }
        for s in cases {
            let digits = naf(&s);
            assert_eq!(value_of(&digits), num_check::Wide::from_bytes(&s));
            for (i, d) in digits.iter().enumerate() {
                if *d != 0 {
                    assert!(d % 2 != 0 && d.abs() < 16, "digit {d}");
                    assert!(digits[i + 1..].iter().take(4).all(|x| *x == 0));
                }
            }
        }
    }
}
