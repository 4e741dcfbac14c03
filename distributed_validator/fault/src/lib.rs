//! Crash points for the fault tests. `DV_CRASH_AT=POINT` (or `POINT:N`,
//! the Nth time it is reached) makes the process kill itself with SIGKILL
//! when it reaches `POINT`: no destructor, no flush, no clean shutdown, as
//! when the machine dies there. Unset, a point costs one atomic load.
//!
//! The points, in pipeline order: [`AFTER_DECISION`],
//! [`MID_SLASHING_TRANSACTION`], [`AFTER_SLASHING_COMMIT`],
//! [`AFTER_PARTIALS_SENT`], [`DURING_COMBINE`], [`DURING_SUBMIT`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const ENV: &str = "DV_CRASH_AT";

/// A consensus instance decided, before anything is signed.
pub const AFTER_DECISION: &str = "after_decision";
/// Inside a slashing-database transaction, its rows written, not committed.
pub const MID_SLASHING_TRANSACTION: &str = "mid_slashing_transaction";
/// The slashing database committed; the partial signature has not left.
pub const AFTER_SLASHING_COMMIT: &str = "after_slashing_commit";
/// This node's partial signatures went to its peers.
pub const AFTER_PARTIALS_SENT: &str = "after_partials_sent";
/// A threshold of partials is being combined.
pub const DURING_COMBINE: &str = "during_combine";
/// A signed message is being submitted to the beacon node.
pub const DURING_SUBMIT: &str = "during_submit";

/// A key-generation ceremony's deal went out to the other operators
/// (`dvnode dkg`, not the node's pipeline).
pub const DKG_AFTER_DEAL: &str = "dkg_after_deal";

/// The ceremony's crash points.
pub const DKG_POINTS: [&str; 1] = [DKG_AFTER_DEAL];

/// Every crash point of the node's pipeline.
pub const POINTS: [&str; 6] = [
    AFTER_DECISION,
    MID_SLASHING_TRANSACTION,
    AFTER_SLASHING_COMMIT,
    AFTER_PARTIALS_SENT,
    DURING_COMBINE,
    DURING_SUBMIT,
];

struct Armed {
    point: String,
    at: u64,
    reached: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(ENV).ok()?;
            let (point, at) = match value.split_once(':') {
                Some((point, n)) => (point, n.parse().ok()?),
                None => (value.as_str(), 1),
            };
            (POINTS.contains(&point) || DKG_POINTS.contains(&point)).then(|| Armed {
                point: point.to_string(),
                at,
                reached: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Whether `DV_CRASH_AT` names a crash point this build knows (for a clear error at start-up).
pub fn check_env() -> Result<(), String> {
    match std::env::var(ENV) {
        Ok(value) if armed().is_none() => Err(format!(
            "{ENV}={value}: not POINT or POINT:N with POINT one of {}, {}",
            POINTS.join(", "),
            DKG_POINTS.join(", ")
        )),
        _ => Ok(()),
    }
}

/// Kills the process here if `DV_CRASH_AT` names `point` and this is the time.
pub fn reached(point: &str) {
    let Some(armed) = armed() else {
        return;
    };
    if armed.point != point || armed.reached.fetch_add(1, Ordering::SeqCst) + 1 != armed.at {
        return;
    }
    eprintln!("{ENV}: crashing at {point}");
    // SAFETY: kill(2) on this process with a valid signal number.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// `DV_DKG_BAD_SHARE_TO=J`: this operator deals operator `J` (0-based)
/// shares that fail their commitments in a key-generation ceremony, as a
/// cheating dealer would; for the test that such a dealer is disqualified.
pub const DKG_BAD_SHARE_ENV: &str = "DV_DKG_BAD_SHARE_TO";

/// The operator `DV_DKG_BAD_SHARE_TO` names, if set to a number.
pub fn dkg_bad_share_to() -> Option<usize> {
    std::env::var(DKG_BAD_SHARE_ENV).ok()?.parse().ok()
}
