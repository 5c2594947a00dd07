//! nftables: whole tables replaced in one atomic transaction (`nft -f`), so a packet
//! sees either the old ruleset or the new one, never a half-written one.

use super::{run, run_with_input};

/// The tables the agent owns, as `family name`.
pub const TABLES: &[&str] = &["bridge stratus", "inet stratus"];

/// Applies a ruleset script (it replaces its own tables).
pub async fn apply(script: &str) -> anyhow::Result<()> {
    run_with_input("nft", &["-f", "-"], Some(script)).await?;
    Ok(())
}

/// Whether `nft` would take a ruleset script, without applying it (`nft -c`).
pub async fn check(script: &str) -> anyhow::Result<()> {
    run_with_input("nft", &["-c", "-f", "-"], Some(script)).await?;
    Ok(())
}

/// The owned tables that exist now.
pub async fn present() -> anyhow::Result<Vec<String>> {
    let out = run("nft", &["list", "tables"]).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix("table "))
        .map(str::trim)
        .filter(|t| TABLES.contains(t))
        .map(str::to_string)
        .collect())
}

pub async fn delete_owned() -> anyhow::Result<()> {
    for t in present().await? {
        let mut args = vec!["delete", "table"];
        args.extend(t.split(' '));
        run("nft", &args).await?;
    }
    Ok(())
}
