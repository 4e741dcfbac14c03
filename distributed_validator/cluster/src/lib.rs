//! The cluster: its lock file, the layout of a node's data directory, and the
//! trusted-dealer operations that create a cluster or dissolve it.

pub mod combine;
pub mod create;
pub mod layout;
pub mod lock;
pub mod network;

pub use combine::combine_cluster;
pub use create::{
    check_cluster_size, create_cluster, default_threshold, write_keystores, CreateError,
    CreateOptions, KeySource,
};
pub use layout::NodeDir;
pub use lock::{
    check_content_hash, content_hash, hash_bytes, operator_public_key, verify_operator_signature,
    ClusterLock, DistributedValidator, LockBody, LockError, LockSignatures, Operator,
};
