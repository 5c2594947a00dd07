//! Examples for every command's `--help` (and its manual page). Commands with their own
//! `after_help` keep it; the verbs every kind shares (`list`, `show`, `delete`) get
//! examples made from the kind's command and a typical name, so no command is without.

/// A name a person might give one of each kind, for the examples.
fn sample(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "server" => ("web-1", "web-2"),
        "image" => ("debian-12", "old-image"),
        "flavor" => ("m1.small", "m1.huge"),
        "network" => ("private", "lab-net"),
        "lease" => ("gpu-4h", "cpu-2d"),
        "subnet" => ("private-v4", "lab-v4"),
        "router" => ("edge", "lab-router"),
        "port" => ("vip", "probe"),
        "sg" => ("web", "ssh-only"),
        "fip" => ("203.0.113.10", "203.0.113.11"),
        "volume" => ("data-1", "scratch"),
        "project" => ("lab-3", "lab-4"),
        "user" => ("alice", "bob"),
        "host" => ("compute-1", "compute-2"),
        "node" => ("rack4-n1", "rack4-n2"),
        _ => ("NAME", "OTHER"),
    }
}

/// The examples of `stratus KIND VERB`, when it is one of the shared verbs (`waits`:
/// the command takes `--wait`).
fn shared(kind: &str, verb: &str, waits: bool) -> Option<String> {
    let (one, two) = sample(kind);
    let lines = match verb {
        "list" => vec![
            format!("stratus {kind} list"),
            format!("stratus {kind} list -o json"),
            format!("stratus {kind} list -o value -c Name"),
        ],
        "show" => vec![format!("stratus {kind} show {one}"), format!("stratus {kind} show {one} -o yaml")],
        "delete" if waits => {
            vec![format!("stratus {kind} delete {one}"), format!("stratus {kind} delete {one} {two} --wait")]
        }
        "delete" => vec![format!("stratus {kind} delete {one}"), format!("stratus {kind} delete {one} {two}")],
        _ => return None,
    };
    Some(format!("Examples:\n  {}", lines.join("\n  ")))
}

/// `cmd` (the whole command line) with examples on every command that has none.
pub fn with_examples(cmd: clap::Command) -> clap::Command {
    let kinds: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    kinds.iter().fold(cmd, |cmd, kind| {
        cmd.mut_subcommand(kind, |k| {
            let verbs: Vec<String> = k.get_subcommands().map(|c| c.get_name().to_string()).collect();
            verbs.iter().fold(k, |k, verb| {
                k.mut_subcommand(verb, |v| {
                    let waits = v.get_arguments().any(|a| a.get_id() == "wait");
                    match (v.get_after_help(), shared(kind, verb, waits)) {
                        (None, Some(examples)) => v.after_help(examples),
                        _ => v,
                    }
                })
            })
        })
    })
}

#[cfg(test)]
mod tests {
    /// Every command a person can run shows examples in its help.
    #[test]
    fn every_command_has_examples() {
        let mut cmd = super::with_examples(<crate::Cli as clap::CommandFactory>::command());
        cmd.build();
        let mut missing = Vec::new();
        fn walk(c: &clap::Command, path: String, missing: &mut Vec<String>) {
            let subs: Vec<&clap::Command> = c.get_subcommands().filter(|s| s.get_name() != "help").collect();
            if subs.is_empty() {
                let help = c.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                if !help.contains("Example") {
                    missing.push(path);
                }
                return;
            }
            for s in subs {
                walk(s, format!("{path} {}", s.get_name()), missing);
            }
        }
        walk(&cmd, "stratus".into(), &mut missing);
        assert!(missing.is_empty(), "commands without examples: {missing:?}");
    }
}
