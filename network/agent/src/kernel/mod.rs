//! The host's kernel state, read and changed with the kernel's own tools: iproute2
//! (`ip`, which speaks rtnetlink) for links, addresses and namespaces, and `nft` for
//! nftables, whose rulesets it applies atomically. Every object the agent makes carries
//! a name prefix, so it never touches what it does not own.

pub mod links;
pub mod nft;

use anyhow::{bail, Context};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Prefix of every network namespace an agent owns: `stratus-<host>-`, so that agents of
/// several hosts sharing one kernel (a test, a container host) never touch each other's.
pub fn netns_prefix(host: &str) -> String {
    format!("stratus-{host}-")
}

/// Runs a command and returns its standard output; a failure carries its stderr.
pub async fn run(prog: &str, args: &[&str]) -> anyhow::Result<String> {
    run_with_input(prog, args, None).await
}

pub async fn run_with_input(prog: &str, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    let mut cmd = Command::new(prog);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().with_context(|| format!("cannot run {prog}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await?;
        drop(stdin);
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("{prog} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this process can change the host's network: root, with iproute2 and nft.
pub fn available() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    let tool = |name: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    root && tool("ip") && tool("nft")
}

/// Calls `changed` whenever a tap or one of `names` appears, disappears or changes state
/// (`ip monitor link`), until the monitor ends.
pub async fn watch_links(names: Vec<String>, changed: impl Fn() + Send + 'static) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new("ip")
        .args(["-o", "monitor", "link"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run ip monitor")?;
    let stdout = child.stdout.take().context("no output from ip monitor")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if line.contains("tap") || names.iter().any(|n| line.contains(n.as_str())) {
            changed();
        }
    }
    let _ = child.wait().await;
    Ok(())
}
