//! Running the real `dvnode` binary from integration tests.

use std::process::{Command, Output};

pub fn dvnode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dvnode"))
        .args(args)
        .output()
        .expect("dvnode runs")
}

/// Everything the command printed, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
