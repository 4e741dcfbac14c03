//! Deposit data: what the ceremony's validator keys sign so they can be
//! deposited, in the staking launchpad's `deposit_data-*.json` format.

use dv_types::{
    compute_domain, compute_signing_root, tree_hash::TreeHash, DepositData, DepositMessage,
    DomainType, ExecutionAddress, Gwei, Hash256, PublicKeyBytes, Root, SignatureBytes, Version,
};
use serde::{Deserialize, Serialize};

/// `DOMAIN_DEPOSIT`.
const DOMAIN_DEPOSIT: DomainType = DomainType([3, 0, 0, 0]);
/// The staking deposit CLI release whose file format this follows.
const DEPOSIT_CLI_VERSION: &str = "2.7.0";

/// 0x01 (or 0x02 when compounding), eleven zero bytes, the execution address.
pub fn withdrawal_credentials(address: ExecutionAddress, compounding: bool) -> Hash256 {
    let mut bytes = [0u8; 32];
    bytes[0] = if compounding { 0x02 } else { 0x01 };
    bytes[12..].copy_from_slice(address.as_slice());
    Hash256::from(bytes)
}

/// Deposits are signed over the genesis fork version and a zero genesis
/// validators root, so they are valid before the chain exists.
pub fn deposit_signing_root(message: &DepositMessage, genesis_fork_version: Version) -> Root {
    compute_signing_root(
        message,
        compute_domain(DOMAIN_DEPOSIT, genesis_fork_version, Root::ZERO),
    )
}

/// One entry of a launchpad deposit-data file (hex without `0x`, the amount in Gwei as a number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchpadDeposit {
    pub pubkey: String,
    pub withdrawal_credentials: String,
    pub amount: Gwei,
    pub signature: String,
    pub deposit_message_root: String,
    pub deposit_data_root: String,
    pub fork_version: String,
    pub network_name: String,
    pub deposit_cli_version: String,
}

impl LaunchpadDeposit {
    pub fn new(data: &DepositData, fork_version: Version, network: &str) -> Self {
        Self {
            pubkey: hex::encode(data.pubkey.0),
            withdrawal_credentials: hex::encode(data.withdrawal_credentials),
            amount: data.amount,
            signature: hex::encode(data.signature.0),
            deposit_message_root: hex::encode(data.message().tree_hash_root()),
            deposit_data_root: hex::encode(data.tree_hash_root()),
            fork_version: hex::encode(fork_version.0),
            network_name: network.to_string(),
            deposit_cli_version: DEPOSIT_CLI_VERSION.into(),
        }
    }

    /// The deposit back from the file, with its roots checked.
    pub fn to_deposit_data(&self) -> Result<DepositData, String> {
        fn bytes<const N: usize>(field: &str, text: &str) -> Result<[u8; N], String> {
            hex::decode(text.trim_start_matches("0x"))
                .ok()
                .and_then(|b| <[u8; N]>::try_from(b).ok())
                .ok_or_else(|| format!("{field}: not {N} bytes of hex"))
        }
        let data = DepositData {
            pubkey: PublicKeyBytes(bytes("pubkey", &self.pubkey)?),
            withdrawal_credentials: Hash256::from(bytes::<32>(
                "withdrawal_credentials",
                &self.withdrawal_credentials,
            )?),
            amount: self.amount,
            signature: SignatureBytes(bytes("signature", &self.signature)?),
        };
        if hex::encode(data.message().tree_hash_root()) != self.deposit_message_root {
            return Err("deposit_message_root does not match the deposit".into());
        }
        if hex::encode(data.tree_hash_root()) != self.deposit_data_root {
            return Err("deposit_data_root does not match the deposit".into());
        }
        Ok(data)
    }
}

/// The file name for the deposits of one amount.
pub fn file_name(amount: Gwei) -> String {
    format!("deposit_data-{amount}gwei.json")
}
