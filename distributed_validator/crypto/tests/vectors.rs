//! Public test vectors: BLS (consensus-spec tests and bls12-381-tests batch
//! cases), EIP-2335 keystores and interop keys, read from `../shared/test-vectors`.

use dv_crypto::*;
use serde::Deserialize;
use std::path::{Path, PathBuf};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/test-vectors")
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).unwrap()
}

/// Every `data.yaml` (or `.json`) case of a BLS operation, parsed; panics when there is none.
fn cases<T: for<'de> Deserialize<'de>>(operation: &str) -> Vec<(String, T)> {
    let dir = vectors().join("bls").join(operation);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let file = if path.is_dir() {
            path.join("data.yaml")
        } else {
            path.clone()
        };
        let text = std::fs::read_to_string(&file).unwrap();
        out.push((
            file.display().to_string(),
            serde_yaml::from_str(&text).unwrap(),
        ));
    }
    assert!(!out.is_empty(), "no cases under {}", dir.display());
    out
}

#[derive(Deserialize)]
struct Case<I, O> {
    input: I,
    output: O,
}

#[derive(Deserialize)]
struct SignInput {
    privkey: String,
    message: String,
}

#[derive(Deserialize)]
struct VerifyInput {
    pubkey: String,
    message: String,
    signature: String,
}

#[derive(Deserialize)]
struct FastAggregateInput {
    pubkeys: Vec<String>,
    message: String,
    signature: String,
}

#[derive(Deserialize)]
struct AggregateVerifyInput {
    pubkeys: Vec<String>,
    messages: Vec<String>,
    signature: String,
}

#[derive(Deserialize)]
struct BatchInput {
    pubkeys: Vec<String>,
    messages: Vec<String>,
    signatures: Vec<String>,
}

fn parse_keys(keys: &[String]) -> Option<Vec<PublicKey>> {
    keys.iter()
        .map(|k| PublicKey::from_bytes(&unhex(k)).ok())
        .collect()
}

#[test]
fn bls_sign() {
    for (name, case) in cases::<Case<SignInput, Option<String>>>("sign") {
        let result = SecretKey::from_bytes(&unhex(&case.input.privkey))
            .ok()
            .map(|sk| sk.sign(&unhex(&case.input.message)).to_hex());
        assert_eq!(result, case.output, "{name}");
    }
}

#[test]
fn bls_verify() {
    for (name, case) in cases::<Case<VerifyInput, bool>>("verify") {
        let msg = unhex(&case.input.message);
        let result = match (
            PublicKey::from_bytes(&unhex(&case.input.pubkey)),
            Signature::from_bytes(&unhex(&case.input.signature)),
        ) {
            (Ok(pk), Ok(sig)) => {
                pk.verify(&msg, &sig) && pk.verify_hashed(&HashedMessage::new(&msg), &sig)
            }
            _ => false,
        };
        assert_eq!(result, case.output, "{name}");
    }
}

#[test]
fn bls_aggregate() {
    for (name, case) in cases::<Case<Vec<String>, Option<String>>>("aggregate") {
        let sigs: Option<Vec<Signature>> = case
            .input
            .iter()
            .map(|s| Signature::from_bytes_allowing_infinity(&unhex(s)).ok())
            .collect();
        let result = sigs
            .and_then(|s| Signature::aggregate(&s))
            .map(|s| s.to_hex());
        assert_eq!(result, case.output, "{name}");
    }
}

#[test]
fn bls_fast_aggregate_verify() {
    for (name, case) in cases::<Case<FastAggregateInput, bool>>("fast_aggregate_verify") {
        let result = match (
            parse_keys(&case.input.pubkeys),
            Signature::from_bytes(&unhex(&case.input.signature)),
        ) {
            (Some(keys), Ok(sig)) => sig.fast_aggregate_verify(&unhex(&case.input.message), &keys),
            _ => false,
        };
        assert_eq!(result, case.output, "{name}");
    }
}

#[test]
fn bls_aggregate_verify() {
    for (name, case) in cases::<Case<AggregateVerifyInput, bool>>("aggregate_verify") {
        let messages: Vec<Vec<u8>> = case.input.messages.iter().map(|m| unhex(m)).collect();
        let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
        let result = match (
            parse_keys(&case.input.pubkeys),
            Signature::from_bytes(&unhex(&case.input.signature)),
        ) {
            (Some(keys), Ok(sig)) => sig.aggregate_verify(&refs, &keys),
            _ => false,
        };
        assert_eq!(result, case.output, "{name}");
    }
}

#[test]
fn bls_batch_verify() {
    for (name, case) in cases::<Case<BatchInput, bool>>("batch_verify") {
        let messages: Vec<Vec<u8>> = case.input.messages.iter().map(|m| unhex(m)).collect();
        let sigs: Option<Vec<Signature>> = case
            .input
            .signatures
            .iter()
            .map(|s| Signature::from_bytes(&unhex(s)).ok())
            .collect();
        let result = match (parse_keys(&case.input.pubkeys), sigs) {
            (Some(keys), Some(sigs)) => {
                let items: Vec<(PublicKey, &[u8], Signature)> = keys
                    .into_iter()
                    .zip(&messages)
                    .zip(sigs)
                    .map(|((k, m), s)| (k, m.as_slice(), s))
                    .collect();
                batch_verify_messages(&items)
            }
            _ => false,
        };
        assert_eq!(result, case.output, "{name}");
    }
}

const EIP2335_PASSWORD: &str = "\u{1d531}\u{1d522}\u{1d530}\u{1d531}\u{1d52d}\u{1d51e}\u{1d530}\u{1d530}\u{1d534}\u{1d52c}\u{1d52f}\u{1d521}\u{1f511}";
const EIP2335_SECRET: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

#[test]
fn eip2335_password_normalisation() {
    let processed = dv_crypto::keystore::normalize_password(EIP2335_PASSWORD);
    assert_eq!(
        hex::encode(processed.as_slice()),
        "7465737470617373776f7264f09f9491"
    );
}

#[test]
fn eip2335_vectors_decrypt() {
    for file in ["scrypt.json", "pbkdf2.json"] {
        let path = vectors().join("eip2335").join(file);
        let sk = Keystore::load(&path, EIP2335_PASSWORD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hex::encode(sk.to_bytes().as_slice()),
            EIP2335_SECRET,
            "{file}"
        );
        let err = Keystore::load(&path, "testpassword").unwrap_err();
        assert!(matches!(
            err,
            KeystoreFileError::Keystore {
                source: KeystoreError::WrongPassword,
                ..
            }
        ));
        assert!(err.to_string().contains(file), "{err}");
    }
}

#[derive(Deserialize)]
struct InteropKey {
    privkey: String,
    pubkey: String,
}

#[test]
fn interop_keys() {
    let path = vectors().join("interop/keygen_10_validators.yaml");
    let keys: Vec<InteropKey> =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(keys.len(), 10);
    for (index, key) in keys.iter().enumerate() {
        let sk = interop_secret_key(index as u64);
        assert_eq!(
            format!("0x{}", hex::encode(sk.to_bytes().as_slice())),
            key.privkey
        );
        assert_eq!(sk.public_key().to_hex(), key.pubkey);
    }
}
