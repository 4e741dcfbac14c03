//! Fork names as the Beacon API spells them (`Eth-Consensus-Version`, `version`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForkName {
    Phase0,
    Altair,
    Bellatrix,
    Capella,
    Deneb,
    Electra,
    Fulu,
}

impl ForkName {
    pub const ALL: [ForkName; 7] = [
        ForkName::Phase0,
        ForkName::Altair,
        ForkName::Bellatrix,
        ForkName::Capella,
        ForkName::Deneb,
        ForkName::Electra,
        ForkName::Fulu,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ForkName::Phase0 => "phase0",
            ForkName::Altair => "altair",
            ForkName::Bellatrix => "bellatrix",
            ForkName::Capella => "capella",
            ForkName::Deneb => "deneb",
            ForkName::Electra => "electra",
            ForkName::Fulu => "fulu",
        }
    }

    /// From Electra on, attestations carry committee bits and committee index 0.
    pub fn electra_enabled(self) -> bool {
        self >= ForkName::Electra
    }
}

impl fmt::Display for ForkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ForkName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        ForkName::ALL
            .into_iter()
            .find(|f| f.as_str() == lower)
            .ok_or_else(|| format!("unknown fork name {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order() {
        assert_eq!("Electra".parse::<ForkName>().unwrap(), ForkName::Electra);
        assert!("gloas".parse::<ForkName>().is_err());
        assert!(ForkName::Fulu.electra_enabled());
        assert!(!ForkName::Deneb.electra_enabled());
        assert_eq!(serde_json::to_string(&ForkName::Fulu).unwrap(), "\"fulu\"");
    }
}
