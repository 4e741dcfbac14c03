//! Where things live in a node's data directory (what `dvnode create cluster`
//! writes and `dvnode run` reads).

use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "cluster-lock.json";
pub const KEYS_DIR: &str = "validator_keys";
pub const P2P_KEY_FILE: &str = "p2p-key";

#[derive(Debug, Clone)]
pub struct NodeDir {
    root: PathBuf,
}

impl NodeDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `DIR/node{i}` inside a cluster directory.
    pub fn in_cluster(cluster_dir: &Path, node: usize) -> Self {
        Self::new(cluster_dir.join(format!("node{node}")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join(KEYS_DIR)
    }

    /// This node's share of validator `k` (EIP-2335).
    pub fn keystore_path(&self, k: usize) -> PathBuf {
        self.keys_dir().join(format!("keystore-{k}.json"))
    }

    pub fn password_path(&self, k: usize) -> PathBuf {
        self.keys_dir().join(format!("keystore-{k}.txt"))
    }

    pub fn p2p_key_path(&self) -> PathBuf {
        self.root.join(P2P_KEY_FILE)
    }
}

/// Writes a file readable by its owner only, via a temporary file and a rename
/// so a crash never leaves a half-written secret behind.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
