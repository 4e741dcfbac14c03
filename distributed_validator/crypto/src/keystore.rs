//! EIP-2335 keystores: a BLS secret key encrypted under a password
//! (scrypt or PBKDF2-SHA256 key derivation, AES-128-CTR, SHA-256 checksum).
//!
//! Every error from [`Keystore::load`] names the file it came from.

use crate::bls::{PublicKey, SecretKey};
use aes::cipher::{KeyIvInit, StreamCipher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Upper bounds on key-derivation cost parameters read from files, so a
/// hostile keystore cannot make the node allocate gigabytes or spin for hours.
const MAX_SCRYPT_N: u64 = 1 << 20;
const MAX_SCRYPT_R: u32 = 32;
const MAX_SCRYPT_P: u32 = 16;
const MAX_PBKDF2_C: u32 = 1 << 24;
const DKLEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("wrong password (checksum mismatch)")]
    WrongPassword,
    #[error("unsupported key derivation function {0:?} (scrypt and pbkdf2 are supported)")]
    UnsupportedKdf(String),
    #[error("unsupported cipher {0:?} (aes-128-ctr is supported)")]
    UnsupportedCipher(String),
    #[error("unsupported checksum function {0:?} (sha256 is supported)")]
    UnsupportedChecksum(String),
    #[error("unsupported keystore version {0} (4 is supported)")]
    UnsupportedVersion(u64),
    #[error("invalid parameter: {0}")]
    InvalidParams(String),
    #[error("decrypted secret is not a valid BLS secret key")]
    InvalidSecret,
    #[error("decrypted key has public key {actual}, the keystore says {stated}")]
    PubkeyMismatch { stated: String, actual: String },
    #[error("malformed keystore JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A keystore error together with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreFileError {
    #[error("keystore {path}: {source}")]
    Keystore {
        path: PathBuf,
        source: KeystoreError,
    },
    #[error("keystore {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to derive the encryption key when writing a keystore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfChoice {
    /// scrypt with n = 2^18, r = 8, p = 1, as Lighthouse and staking-deposit-cli write.
    Scrypt,
    /// PBKDF2-HMAC-SHA256 with `c` iterations (2^18 is the EIP's example).
    Pbkdf2 { iterations: u32 },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Keystore {
    pub crypto: CryptoSection,
    #[serde(default)]
    pub description: String,
    pub pubkey: String,
    #[serde(default)]
    pub path: String,
    pub uuid: String,
    pub version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CryptoSection {
    pub kdf: Module,
    pub checksum: Module,
    pub cipher: Module,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Module {
    pub function: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub message: String,
}

/// EIP-2335 password processing: NFKD, then drop C0, C1 and DEL control codes.
pub fn normalize_password(password: &str) -> Zeroizing<Vec<u8>> {
    let cleaned: Zeroizing<String> = Zeroizing::new(
        password
            .nfkd()
            .filter(|c| !matches!(*c as u32, 0x00..=0x1f | 0x7f..=0x9f))
            .collect(),
    );
    Zeroizing::new(cleaned.as_bytes().to_vec())
}

fn hex_param(
    params: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Vec<u8>, KeystoreError> {
    let text = params
        .get(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| KeystoreError::InvalidParams(format!("{name} missing or not a string")))?;
    decode_hex(text, name)
}

fn decode_hex(text: &str, name: &str) -> Result<Vec<u8>, KeystoreError> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|e| KeystoreError::InvalidParams(format!("{name} is not hex: {e}")))
}

fn uint_param(
    params: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<u64, KeystoreError> {
    params.get(name).and_then(|v| v.as_u64()).ok_or_else(|| {
        KeystoreError::InvalidParams(format!("{name} missing or not an unsigned integer"))
    })
}

fn derive_key(kdf: &Module, password: &[u8]) -> Result<Zeroizing<[u8; DKLEN]>, KeystoreError> {
    let params = &kdf.params;
    let dklen = uint_param(params, "dklen")?;
    if dklen != DKLEN as u64 {
        return Err(KeystoreError::InvalidParams(format!(
            "dklen {dklen}, expected {DKLEN}"
        )));
    }
    let salt = hex_param(params, "salt")?;
    let mut key = Zeroizing::new([0u8; DKLEN]);
    match kdf.function.as_str() {
        "scrypt" => {
            let n = uint_param(params, "n")?;
            let r = uint_param(params, "r")?;
            let p = uint_param(params, "p")?;
            if !n.is_power_of_two() || !(2..=MAX_SCRYPT_N).contains(&n) {
                return Err(KeystoreError::InvalidParams(format!(
                    "scrypt n {n} must be a power of two in 2..={MAX_SCRYPT_N}"
                )));
            }
            let r = u32::try_from(r)
                .ok()
                .filter(|r| (1..=MAX_SCRYPT_R).contains(r));
            let p = u32::try_from(p)
                .ok()
                .filter(|p| (1..=MAX_SCRYPT_P).contains(p));
            let (Some(r), Some(p)) = (r, p) else {
                return Err(KeystoreError::InvalidParams(format!(
                    "scrypt r must be in 1..={MAX_SCRYPT_R} and p in 1..={MAX_SCRYPT_P}"
                )));
            };
            let scrypt_params = scrypt::Params::new(n.trailing_zeros() as u8, r, p, DKLEN)
                .map_err(|e| KeystoreError::InvalidParams(format!("scrypt: {e}")))?;
            scrypt::scrypt(password, &salt, &scrypt_params, key.as_mut())
                .map_err(|e| KeystoreError::InvalidParams(format!("scrypt: {e}")))?;
        }
        "pbkdf2" => {
            let prf = params.get("prf").and_then(|v| v.as_str()).unwrap_or("");
            if prf != "hmac-sha256" {
                return Err(KeystoreError::InvalidParams(format!(
                    "pbkdf2 prf {prf:?}, expected hmac-sha256"
                )));
            }
            let c = uint_param(params, "c")?;
            let c = u32::try_from(c)
                .ok()
                .filter(|c| (1..=MAX_PBKDF2_C).contains(c))
                .ok_or_else(|| {
                    KeystoreError::InvalidParams(format!(
                        "pbkdf2 c {c} must be in 1..={MAX_PBKDF2_C}"
                    ))
                })?;
            pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, c, key.as_mut());
        }
        other => return Err(KeystoreError::UnsupportedKdf(other.to_string())),
    }
    Ok(key)
}

fn checksum(key: &[u8; DKLEN], cipher_message: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(&key[16..32]);
    hasher.update(cipher_message);
    hasher.finalize().into()
}

fn apply_aes_ctr(key: &[u8; DKLEN], iv: &[u8], data: &mut [u8]) -> Result<(), KeystoreError> {
    let mut cipher = Aes128Ctr::new_from_slices(&key[..16], iv).map_err(|_| {
        KeystoreError::InvalidParams(format!("iv must be 16 bytes, got {}", iv.len()))
    })?;
    cipher.apply_keystream(data);
    Ok(())
}

impl Keystore {
    pub fn from_json(text: &str) -> Result<Self, KeystoreError> {
        let keystore: Keystore = serde_json::from_str(text)?;
        if keystore.version != 4 {
            return Err(KeystoreError::UnsupportedVersion(keystore.version));
        }
        Ok(keystore)
    }

    pub fn to_json(&self) -> String {
        // A struct of strings, maps and integers always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Decrypts with `password` (processed as EIP-2335 requires).
    pub fn decrypt(&self, password: &str) -> Result<SecretKey, KeystoreError> {
        let crypto = &self.crypto;
        if crypto.checksum.function != "sha256" {
            return Err(KeystoreError::UnsupportedChecksum(
                crypto.checksum.function.clone(),
            ));
        }
        if crypto.cipher.function != "aes-128-ctr" {
            return Err(KeystoreError::UnsupportedCipher(
                crypto.cipher.function.clone(),
            ));
        }
        let key = derive_key(&crypto.kdf, &normalize_password(password))?;
        let cipher_message = decode_hex(&crypto.cipher.message, "cipher message")?;
        let expected = decode_hex(&crypto.checksum.message, "checksum message")?;
        if checksum(&key, &cipher_message).as_slice() != expected.as_slice() {
            return Err(KeystoreError::WrongPassword);
        }
        let mut secret = Zeroizing::new(cipher_message);
        apply_aes_ctr(&key, &hex_param(&crypto.cipher.params, "iv")?, &mut secret)?;
        let sk = SecretKey::from_bytes(&secret).map_err(|_| KeystoreError::InvalidSecret)?;
        let actual = sk.public_key();
        if !self.pubkey.is_empty() {
            let stated = PublicKey::from_bytes(&decode_hex(&self.pubkey, "pubkey")?).ok();
            if stated != Some(actual) {
                return Err(KeystoreError::PubkeyMismatch {
                    stated: self.pubkey.clone(),
                    actual: actual.to_hex(),
                });
            }
        }
        Ok(sk)
    }

    /// Encrypts `secret` under `password` with fresh salt, IV and UUID.
    pub fn encrypt(
        secret: &SecretKey,
        password: &str,
        kdf: KdfChoice,
        path: &str,
        description: &str,
    ) -> Self {
        let mut salt = [0u8; 32];
        let mut iv = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
        let params = match kdf {
            KdfChoice::Scrypt => {
                serde_json::json!({"dklen": DKLEN, "n": 262144, "r": 8, "p": 1, "salt": hex::encode(salt)})
            }
            KdfChoice::Pbkdf2 { iterations } => {
                serde_json::json!({"dklen": DKLEN, "c": iterations, "prf": "hmac-sha256", "salt": hex::encode(salt)})
            }
        };
        let kdf_module = Module {
            function: match kdf {
                KdfChoice::Scrypt => "scrypt",
                KdfChoice::Pbkdf2 { .. } => "pbkdf2",
            }
            .to_string(),
            params: params.as_object().cloned().unwrap_or_default(),
            message: String::new(),
        };
        // Parameters are ours and within bounds, so derivation cannot fail.
        let key = derive_key(&kdf_module, &normalize_password(password))
            .expect("own KDF parameters are valid");
        let mut cipher_message = secret.to_bytes().to_vec();
        apply_aes_ctr(&key, &iv, &mut cipher_message).expect("16-byte IV");
        let checksum = checksum(&key, &cipher_message);
        Keystore {
            crypto: CryptoSection {
                kdf: kdf_module,
                checksum: Module {
                    function: "sha256".into(),
                    params: Default::default(),
                    message: hex::encode(checksum),
                },
                cipher: Module {
                    function: "aes-128-ctr".into(),
                    params: serde_json::json!({"iv": hex::encode(iv)})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    message: hex::encode(cipher_message),
                },
            },
            description: description.to_string(),
            pubkey: hex::encode(secret.public_key().to_bytes()),
            path: path.to_string(),
            uuid: uuid::Uuid::new_v4().to_string(),
            version: 4,
        }
    }

    /// Reads and parses a keystore file (does not decrypt).
    pub fn read(path: &Path) -> Result<Self, KeystoreFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeystoreFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|source| KeystoreFileError::Keystore {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and decrypts a keystore file.
    pub fn load(path: &Path, password: &str) -> Result<SecretKey, KeystoreFileError> {
        Self::read(path)?
            .decrypt(password)
            .map_err(|source| KeystoreFileError::Keystore {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// Reads a password file the way validator clients do: the content with trailing newlines removed.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>, KeystoreFileError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| KeystoreFileError::Io {
                path: path.to_path_buf(),
                source,
            })?,
        );
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfChoice = KdfChoice::Pbkdf2 { iterations: 16 };

    #[test]
    fn round_trip_and_wrong_password() {
        let sk = SecretKey::random();
        let ks = Keystore::encrypt(&sk, "secret\u{7}pass", FAST, "", "share");
        let back = Keystore::from_json(&ks.to_json()).unwrap();
        // The control character is stripped, so the plain password opens it.
        assert_eq!(
            back.decrypt("secretpass").unwrap().to_bytes(),
            sk.to_bytes()
        );
        assert!(matches!(
            back.decrypt("wrong"),
            Err(KeystoreError::WrongPassword)
        ));
    }

    #[test]
    fn rejects_unsupported_and_hostile_params() {
        let sk = SecretKey::random();
        let mut ks = Keystore::encrypt(&sk, "p", FAST, "", "");
        ks.crypto.kdf.function = "argon2".into();
        assert!(matches!(
            ks.decrypt("p"),
            Err(KeystoreError::UnsupportedKdf(_))
        ));
        let mut ks = Keystore::encrypt(&sk, "p", KdfChoice::Scrypt, "", "");
        ks.crypto
            .kdf
            .params
            .insert("n".into(), serde_json::json!(1u64 << 30));
        assert!(matches!(
            ks.decrypt("p"),
            Err(KeystoreError::InvalidParams(_))
        ));
        assert!(matches!(
            Keystore::from_json("{\"crypto\": 1}"),
            Err(KeystoreError::Json(_))
        ));
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore-0.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = Keystore::load(&path, "p").unwrap_err().to_string();
        assert!(err.contains("keystore-0.json"), "{err}");
        let missing = Keystore::load(&dir.path().join("absent.json"), "p")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("absent.json"), "{missing}");
    }
}
