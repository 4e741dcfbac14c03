//! Trusted-dealer cluster creation: split each validator key into `n` shares
//! and write one directory per node.

use crate::layout::{write_private, NodeDir};
use crate::lock::{
    builder_domain, BuilderRegistration, ClusterLock, DistributedValidator, LockBody, Operator,
    LOCK_VERSION,
};
use dv_crypto::keystore::read_password_file;
use dv_crypto::{
    interop_secret_key, split, KdfChoice, Keystore, KeystoreFileError, SecretKey, ThresholdParams,
};
use dv_types::{
    compute_signing_root, ExecutionAddress, PublicKeyBytes, SignatureBytes, ValidatorRegistration,
    Version,
};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where the validator keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Interop keys of these validator indices (dev chains).
    Interop(Range<u64>),
    /// Existing EIP-2335 keystores (`*.json` in the directory, sorted by name),
    /// with one password file for all, or `<name>.txt` beside each keystore.
    Keystores {
        dir: PathBuf,
        password_file: Option<PathBuf>,
    },
    /// Fresh random keys.
    Random(usize),
}

#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub name: String,
    pub keys: KeySource,
    pub nodes: usize,
    /// `None`: ceil(2n/3).
    pub threshold: Option<usize>,
    pub fork_version: Version,
    pub network: String,
    pub out: PathBuf,
    /// Replace an existing cluster in `out`.
    pub force: bool,
    pub kdf: KdfChoice,
    /// One libp2p multiaddress per node; `None` gives 127.0.0.1 ports from `p2p_base_port`.
    pub p2p_addresses: Option<Vec<String>>,
    pub p2p_base_port: u16,
    /// Sign each validator's builder registration with this fee recipient
    /// and gas limit (and the creation time as its timestamp).
    pub builder: Option<(ExecutionAddress, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} already holds a cluster; pass --force to replace it")]
    AlreadyExists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keystore(#[from] KeystoreFileError),
    #[error("no keystore (*.json) found in {0}")]
    NoKeystores(PathBuf),
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// ceil(2n/3): the smallest threshold that tolerates floor((n-1)/3) faulty nodes.
pub fn default_threshold(nodes: usize) -> usize {
    (2 * nodes).div_ceil(3)
}

/// Checks `n` and `t` for a BFT cluster: n = 1 or n ≥ 3, and n/2 < t ≤ n.
pub fn check_cluster_size(nodes: usize, threshold: usize) -> Result<(), CreateError> {
    if nodes == 0 || nodes == 2 {
        return Err(CreateError::InvalidArgument(format!(
            "--nodes {nodes}: a cluster needs at least 3 nodes (or 1 for a single-node baseline)"
        )));
    }
    if threshold * 2 <= nodes || threshold > nodes {
        return Err(CreateError::InvalidArgument(format!(
            "--threshold {threshold} must be more than half of and at most --nodes {nodes}"
        )));
    }
    Ok(())
}

fn load_secret_keys(source: &KeySource) -> Result<Vec<SecretKey>, CreateError> {
    match source {
        KeySource::Interop(range) => {
            if range.is_empty() {
                return Err(CreateError::InvalidArgument(format!(
                    "--interop-validators {}..{} selects no validator",
                    range.start, range.end
                )));
            }
            Ok(range.clone().map(interop_secret_key).collect())
        }
        KeySource::Random(count) => {
            if *count == 0 {
                return Err(CreateError::InvalidArgument(
                    "--validators must be at least 1".into(),
                ));
            }
            Ok((0..*count).map(|_| SecretKey::random()).collect())
        }
        KeySource::Keystores { dir, password_file } => {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io_error(dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            paths.sort();
            if paths.is_empty() {
                return Err(CreateError::NoKeystores(dir.clone()));
            }
            let shared = password_file
                .as_deref()
                .map(read_password_file)
                .transpose()?;
            paths
                .iter()
                .map(|path| {
                    let password = match &shared {
                        Some(p) => p.clone(),
                        None => read_password_file(&path.with_extension("txt"))?,
                    };
                    Ok(Keystore::load(path, &password)?)
                })
                .collect()
        }
    }
}

pub(crate) fn random_password() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let password = hex::encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    password
}

/// Refuses to touch an existing cluster unless `force`; with `force`, removes its node directories.
fn prepare_output(out: &Path, force: bool) -> Result<(), CreateError> {
    let existing: Vec<PathBuf> = match std::fs::read_dir(out) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("node") && n[4..].parse::<usize>().is_ok())
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(CreateError::Io {
                path: out.to_path_buf(),
                source: e,
            })
        }
    };
    if !existing.is_empty() {
        if !force {
            return Err(CreateError::AlreadyExists(out.to_path_buf()));
        }
        for dir in existing {
            std::fs::remove_dir_all(&dir).map_err(io_error(&dir))?;
        }
    }
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    Ok(())
}

/// The validator's builder registration, timestamped now.
fn sign_registration(
    secret: &dv_crypto::SecretKey,
    fee_recipient: ExecutionAddress,
    gas_limit: u64,
    fork_version: Version,
) -> BuilderRegistration {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let message = ValidatorRegistration {
        fee_recipient,
        gas_limit,
        timestamp,
        pubkey: PublicKeyBytes(secret.public_key().to_bytes()),
    };
    let root = compute_signing_root(&message, builder_domain(fork_version));
    BuilderRegistration {
        fee_recipient,
        gas_limit,
        timestamp,
        signature: SignatureBytes(secret.sign(root.as_slice()).to_bytes()),
    }
}

/// Creates the cluster and returns its lock. Secrets are written only to
/// files readable by their owner; nothing secret is returned or printed.
pub fn create_cluster(opts: &CreateOptions) -> Result<ClusterLock, CreateError> {
    let n = opts.nodes;
    let t = opts.threshold.unwrap_or_else(|| default_threshold(n));
    check_cluster_size(n, t)?;
    let params =
        ThresholdParams::new(t, n).map_err(|e| CreateError::InvalidArgument(e.to_string()))?;
    let addresses = match &opts.p2p_addresses {
        Some(list) if list.len() != n => {
            return Err(CreateError::InvalidArgument(format!(
                "{} p2p addresses given for {n} nodes",
                list.len()
            )))
        }
        Some(list) => list.clone(),
        None => (0..n)
            .map(|i| {
                let port = opts.p2p_base_port as usize + i;
                u16::try_from(port)
                    .map(|p| format!("/ip4/127.0.0.1/tcp/{p}"))
                    .map_err(|_| {
                        CreateError::InvalidArgument(format!("p2p port {port} is out of range"))
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let secrets = load_secret_keys(&opts.keys)?;
    prepare_output(&opts.out, opts.force)?;

    let p2p_keys: Vec<libp2p_identity::Keypair> = (0..n)
        .map(|_| libp2p_identity::Keypair::generate_ed25519())
        .collect();
    let operators = p2p_keys
        .iter()
        .zip(addresses)
        .enumerate()
        .map(|(index, (key, address))| Operator {
            index,
            peer_id: key.public().to_peer_id().to_base58(),
            address,
        })
        .collect();

    let shares: Vec<Vec<dv_crypto::SecretShare>> =
        secrets.iter().map(|sk| split(sk, params)).collect();
    let validators = secrets
        .iter()
        .zip(&shares)
        .map(|(sk, shares)| DistributedValidator {
            public_key: PublicKeyBytes(sk.public_key().to_bytes()),
            public_shares: shares
                .iter()
                .map(|s| PublicKeyBytes(s.secret.public_key().to_bytes()))
                .collect(),
            builder_registration: opts.builder.map(|(fee_recipient, gas_limit)| {
                sign_registration(sk, fee_recipient, gas_limit, opts.fork_version)
            }),
        })
        .collect();
    let lock = ClusterLock::new(LockBody {
        version: LOCK_VERSION.to_string(),
        name: opts.name.clone(),
        network: opts.network.clone(),
        fork_version: opts.fork_version,
        threshold: t,
        operators,
        validators,
        definition_hash: None,
    });
    lock.body.validate().map_err(CreateError::InvalidArgument)?;

    for (node, p2p_key) in p2p_keys.iter().enumerate() {
        write_node(&opts.out, node, &lock, p2p_key, &shares, opts.kdf)?;
    }
    Ok(lock)
}

/// Writes `node{i}` under a temporary name, then renames it into place.
fn write_node(
    out: &Path,
    node: usize,
    lock: &ClusterLock,
    p2p_key: &libp2p_identity::Keypair,
    shares: &[Vec<dv_crypto::SecretShare>],
    kdf: KdfChoice,
) -> Result<(), CreateError> {
    let final_dir = NodeDir::in_cluster(out, node);
    let staging = NodeDir::new(out.join(format!(".node{node}.partial")));
    if staging.root().exists() {
        std::fs::remove_dir_all(staging.root()).map_err(io_error(staging.root()))?;
    }
    std::fs::create_dir_all(staging.keys_dir()).map_err(io_error(&staging.keys_dir()))?;
    std::fs::write(staging.lock_path(), lock.to_json()).map_err(io_error(&staging.lock_path()))?;
    let encoded = p2p_key
        .to_protobuf_encoding()
        .map_err(|e| CreateError::InvalidArgument(format!("p2p key encoding: {e}")))?;
    write_private(&staging.p2p_key_path(), hex::encode(encoded).as_bytes())
        .map_err(io_error(&staging.p2p_key_path()))?;
    let mine: Vec<&dv_crypto::SecretShare> = shares.iter().map(|v| &v[node]).collect();
    write_keystores(&staging, lock, &mine, kdf)?;
    std::fs::rename(staging.root(), final_dir.root()).map_err(io_error(final_dir.root()))
}

/// Writes share `k` of `shares` as `keystore-{k}.json` with a random
/// password beside it (`keystore-{k}.txt`), both readable by the owner
/// only. The key derivation (scrypt) is slow on purpose: the keystores are
/// encrypted on every core.
pub fn write_keystores(
    node: &NodeDir,
    lock: &ClusterLock,
    shares: &[&dv_crypto::SecretShare],
    kdf: KdfChoice,
) -> Result<(), CreateError> {
    std::fs::create_dir_all(node.keys_dir()).map_err(io_error(&node.keys_dir()))?;
    let indexed: Vec<(usize, &dv_crypto::SecretShare)> =
        shares.iter().copied().enumerate().collect();
    let written = dv_crypto::par_map(&indexed, |(k, share)| {
        let password = zeroize::Zeroizing::new(random_password());
        let description = format!(
            "{} share {} of validator {}",
            lock.body.name, share.index, lock.body.validators[*k].public_key
        );
        let keystore = Keystore::encrypt(&share.secret, &password, kdf, "", &description);
        write_private(&node.keystore_path(*k), keystore.to_json().as_bytes())
            .map_err(io_error(&node.keystore_path(*k)))?;
        write_private(&node.password_path(*k), password.as_bytes())
            .map_err(io_error(&node.password_path(*k)))
    });
    written.into_iter().collect()
}
