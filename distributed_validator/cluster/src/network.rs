//! Known networks and their genesis fork versions.

use dv_types::Version;

/// `(name, GENESIS_FORK_VERSION)` of the public networks and the minimal dev preset.
pub const NETWORKS: [(&str, [u8; 4]); 5] = [
    ("mainnet", [0x00, 0x00, 0x00, 0x00]),
    ("sepolia", [0x90, 0x00, 0x00, 0x69]),
    ("holesky", [0x01, 0x01, 0x70, 0x00]),
    ("hoodi", [0x10, 0x00, 0x09, 0x10]),
    ("minimal", [0x00, 0x00, 0x00, 0x01]),
];

pub fn genesis_fork_version(network: &str) -> Option<Version> {
    NETWORKS
        .iter()
        .find(|(name, _)| *name == network)
        .map(|(_, v)| Version(*v))
}

/// The network name for a fork version, or `custom`.
pub fn network_name(version: Version) -> &'static str {
    NETWORKS
        .iter()
        .find(|(_, v)| *v == version.0)
        .map(|(name, _)| *name)
        .unwrap_or("custom")
}
