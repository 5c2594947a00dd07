//! `stratus`: the cloud from a terminal. Credentials as the openstack client takes them
//! (`--os-cloud`/`OS_CLOUD` and clouds.yaml, or `OS_*`), the token cached between
//! commands, tables by default and `-o json|value` for scripts.
//!
//! Exit codes: 0 done; 1 the cloud refused (its message is printed); 2 bad usage;
//! 3 configuration or authentication; 4 not found; 5 a service could not be reached;
//! 6 a `--wait` ran out of time or ended in ERROR.

mod accounts;
mod create;
mod examples;
mod hardware;
mod images;
mod launch;
mod leases;
mod output;
mod quotas;
mod servers;
mod wait;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use stratus_client::resources::{self as kinds, Kind};
use stratus_client::{CloudConfig, Error, Session};

#[derive(Parser)]
#[command(
    name = "stratus",
    version,
    about = "Stratus from a terminal: servers, images, flavors, networks, leases, reservable hosts and bare-metal nodes",
    after_help = "Examples:\n  stratus --os-cloud mycloud server list\n  stratus server show web-1 -o json\n  \
                  stratus lease list -c Name -c Status\n  OS_CLOUD=mycloud stratus node list -o value -c UUID\n\n\
                  stratus server create web-1 --image debian --flavor m1.small --network private --wait\n  \
                  stratus server delete web-1 --wait\n  \
                  stratus lease create gpu-4h --node-type gpu_rtx --hours 4 --wait\n  \
                  stratus launch web-1 --image debian --flavor m1.small --floating-ip --generate-key --wait-ssh\n  \
                  stratus ssh web-1 -- uname -a\n  stratus down web-1\n  stratus status\n\n\
                  Exit codes: 0 done, 1 refused by the cloud, 2 bad usage, 3 configuration or authentication,\n\
                  4 not found, 5 a service could not be reached, 6 a --wait ran out of time or ended in ERROR."
)]
struct Cli {
    /// The cloud of clouds.yaml to use (default: OS_CLOUD, else the OS_* variables).
    #[arg(long, global = true, env = "OS_CLOUD")]
    os_cloud: Option<String>,
    /// How to print: an aligned table, JSON, YAML, or bare values (one line per row).
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Only these columns (by header, any case); repeat for more.
    #[arg(short = 'c', long = "column", global = true)]
    columns: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
    Value,
}

impl Format {
    /// JSON or YAML: whole documents for scripts, not cells.
    pub fn structured(self) -> bool {
        matches!(self, Format::Json | Format::Yaml)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Servers (compute)
    Server {
        #[command(subcommand)]
        verb: servers::ServerVerb,
    },
    /// Images (image service)
    Image {
        #[command(subcommand)]
        verb: images::ImageVerb,
    },
    /// Flavors (compute)
    Flavor {
        #[command(subcommand)]
        verb: hardware::FlavorVerb,
    },
    /// Networks (network service)
    Network {
        #[command(subcommand)]
        verb: create::NetworkVerb,
    },
    /// Leases (reservation service)
    Lease {
        #[command(subcommand)]
        verb: leases::LeaseVerb,
    },
    /// Subnets (network service)
    Subnet {
        #[command(subcommand)]
        verb: create::SubnetVerb,
    },
    /// Routers (network service)
    Router {
        #[command(subcommand)]
        verb: create::RouterVerb,
    },
    /// Ports (network service)
    Port {
        #[command(subcommand)]
        verb: create::PortVerb,
    },
    /// Security groups (network service)
    Sg {
        #[command(subcommand)]
        verb: create::SgVerb,
    },
    /// Floating IPs (network service; `show` takes the ID or the address)
    Fip {
        #[command(subcommand)]
        verb: create::FipVerb,
    },
    /// Volumes (block storage)
    Volume {
        #[command(subcommand)]
        verb: create::VolumeVerb,
    },
    /// Projects (identity; an admin sees every one)
    Project {
        #[command(subcommand)]
        verb: accounts::ProjectVerb,
    },
    /// Users (identity; the admin's)
    User {
        #[command(subcommand)]
        verb: accounts::UserVerb,
    },
    /// Reservable hosts (reservation service; the admin's unless the cloud lets users read them)
    Host {
        #[command(subcommand)]
        verb: hardware::HostVerb,
    },
    /// Bare-metal nodes (the admin's)
    Node {
        #[command(subcommand)]
        verb: hardware::NodeVerb,
    },
    /// A project's quotas across compute, network and block storage: what it uses and may use
    Quota {
        #[command(subcommand)]
        verb: quotas::QuotaVerb,
    },
    /// What a project used over a window: its servers' hours, vCPU-, memory- and disk-hours, its volumes' GB-hours
    #[command(after_help = "Examples:\n  stratus usage\n  stratus usage --start 2026-11-01 --end 2026-12-01 -o json")]
    Usage {
        /// The project, by name or ID (default: the session's)
        #[arg(long)]
        project: Option<String>,
        /// From (UTC; YYYY-MM-DD or \"YYYY-MM-DD HH:MM\"; default: 30 days ago)
        #[arg(long)]
        start: Option<String>,
        /// To (UTC; default: now)
        #[arg(long)]
        end: Option<String>,
    },
    /// The session's token
    Token {
        #[command(subcommand)]
        verb: TokenVerb,
    },
    /// Boot a server reachable in one step: the project's network, subnet and router on
    /// first use, SSH allowed, a keypair, a lease, a floating IP, as asked
    #[command(
        after_help = "Examples:\n  stratus launch web-1 --image debian-12 --flavor m1.small --floating-ip --generate-key --wait-ssh\n  stratus launch gpu-1 --image ubuntu-22.04 --flavor baremetal --reserve node_type=gpu_rtx,hours=4 --floating-ip --wait-ssh\n  stratus launch db-1 --image debian-12 --flavor m1.large --network private --key mykey --volume 20"
    )]
    Launch(launch::LaunchArgs),
    /// SSH to a server (its floating IP, and the key launch made for it)
    #[command(
        after_help = "Examples:\n  stratus ssh web-1\n  stratus ssh web-1 -- uname -a\n  stratus ssh web-1 --user debian -- sudo journalctl -b"
    )]
    Ssh {
        /// The server's name or ID
        name: String,
        /// The user (default: the image's os_admin_user, else root)
        #[arg(long, short = 'l')]
        user: Option<String>,
        /// A command to run there
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Remove a launched server and exactly what launch made for it
    #[command(after_help = "Examples:\n  stratus down web-1\n  stratus down gpu-1 --timeout 1800")]
    Down {
        /// The server's name or ID
        name: String,
        /// Give up waiting after this many seconds
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// The project at a glance: servers, leases and their time left, quotas
    #[command(after_help = "Examples:\n  stratus status\n  stratus status -o json")]
    Status,
    /// Print a shell completion script (`source <(stratus completion bash)`)
    #[command(
        after_help = "Examples:\n  source <(stratus completion bash)\n  stratus completion zsh > ~/.zfunc/_stratus\n  stratus completion fish > ~/.config/fish/completions/stratus.fish"
    )]
    Completion {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (stratus.1 and one per command) into a directory
    #[command(after_help = "Examples:\n  stratus man ~/.local/share/man/man1 && man stratus-launch")]
    Man {
        /// Where to write them
        dir: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
pub enum Verb {
    /// List them (the project's, or what the caller may see)
    List,
    /// Show one, by name or ID
    Show {
        /// Its name or ID
        name: String,
    },
    /// Delete them, by name or ID
    Delete {
        /// Their names or IDs
        #[arg(required = true)]
        names: Vec<String>,
        /// Wait until they are gone
        #[command(flatten)]
        wait: wait::WaitArgs,
    },
    /// Change one: rename it, describe it, enable or disable it, set or unset properties
    #[command(
        after_help = "Examples:\n  stratus network set private --name private-old --description \"before the move\"\n  \
                            stratus project set lab-3 --disable\n  \
                            stratus host set compute-1 --property node_type=gpu_a100\n  \
                            stratus flavor set m1.small --property hw:cpu_policy=dedicated --unset-property quota:vif"
    )]
    Set(SetArgs),
}

/// What `set` changes.
#[derive(clap::Args)]
pub struct SetArgs {
    /// Its name or ID
    pub name: String,
    /// Its new name
    #[arg(long = "name", value_name = "NEW_NAME")]
    pub new_name: Option<String>,
    /// Its new description
    #[arg(long)]
    pub description: Option<String>,
    /// Enable it (a project or user; a network, router or port: administratively up)
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable it (a project or user; a network, router or port: administratively down)
    #[arg(long)]
    pub disable: bool,
    /// Set a property, KEY=VALUE (repeatable): a server's or volume's metadata, an
    /// image's or node's properties, a flavor's extra specs, a host's capabilities
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Remove a property (repeatable)
    #[arg(long = "unset-property", value_name = "KEY")]
    pub unset_properties: Vec<String>,
}

/// Properties to set (`Some`) and to remove (`None`).
pub type PropertyChanges = Vec<(String, Option<String>)>;

impl SetArgs {
    /// The properties to set and to remove, checked.
    pub fn property_changes(&self) -> Result<PropertyChanges, Failure> {
        let mut out = Vec::new();
        for (k, v) in key_values("--property", &self.properties)? {
            out.push((k, Some(v)));
        }
        for k in &self.unset_properties {
            if k.trim().is_empty() {
                return Err(usage("--unset-property needs a key".into()));
            }
            out.push((k.trim().to_string(), None));
        }
        Ok(out)
    }
}

/// `KEY=VALUE` arguments of `flag`, in order; one without `=` or a key is bad usage.
pub fn key_values(flag: &str, items: &[String]) -> Result<Vec<(String, String)>, Failure> {
    items
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(usage(format!("{flag} {p:?}: give KEY=VALUE"))),
        })
        .collect()
}

#[derive(Subcommand)]
enum TokenVerb {
    /// Print the token (from the cache when it has more than five minutes left)
    #[command(after_help = "Examples:\n  stratus token issue\n  stratus token issue -o value -c id")]
    Issue,
}

/// A failure and the exit code it gets.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::Config(_) | Error::Auth(_) | Error::NoEndpoint { .. } => 3,
            Error::Api { status: 404, .. } | Error::NotFound { .. } => 4,
            Error::Api { .. } | Error::Ambiguous { .. } => 1,
            Error::Unreachable(_) => 5,
        };
        let mut message = e.to_string();
        if let Some(hint) = hint(&e) {
            message = format!("{message}\n  {hint}");
        }
        Self { code, message }
    }
}

/// What to do next, for the refusals people meet most.
fn hint(e: &Error) -> Option<&'static str> {
    let Error::Api { status, message } = e else { return None };
    let m = message.to_ascii_lowercase();
    if m.contains("quota exceeded") || m.contains("quota") && *status == 413 {
        Some("the project's quota is used up: free something (stratus status shows the use), or ask an admin to raise it (openstack quota set)")
    } else if *status == 403 {
        Some("your role in this project may not do that: ask the project's admin, or use another cloud entry (--os-cloud)")
    } else if *status == 409 && m.contains("not enough hosts") {
        Some("no matching hosts are free for that window: try fewer nodes, another node type, or a later --start")
    } else {
        None
    }
}

fn main() {
    let matches = examples::with_examples(<Cli as clap::CommandFactory>::command()).get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stratus: cannot start: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => {}
        Err(f) => {
            eprintln!("stratus: {}", f.message);
            std::process::exit(f.code);
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // What needs no cloud.
    match &cli.command {
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut <Cli as clap::CommandFactory>::command(), "stratus", &mut script);
            output::emit(&String::from_utf8_lossy(&script));
            return Ok(());
        }
        Command::Man { dir } => return man_pages(dir),
        _ => {}
    }
    let session = Session::connect(CloudConfig::load(cli.os_cloud.as_deref())?).await?;
    match commands(cli, &session).await {
        // A refusal over a quota says which quota, what is in use and the limit.
        Err(mut f) if f.code == 1 => {
            if let Some(more) = quotas::explain(&session, &f.message).await {
                f.message = format!("{}\n{more}", f.message);
            }
            Err(f)
        }
        other => other,
    }
}

/// The commands that talk to the cloud.
async fn commands(cli: Cli, session: &Session) -> Result<(), Failure> {
    let (kind, verb) = match cli.command {
        Command::Launch(args) => return launch::launch(session, args, cli.format, &cli.columns).await,
        Command::Ssh { name, user, command } => return launch::ssh(session, &name, user.as_deref(), &command).await,
        Command::Down { name, timeout } => return launch::down(session, &name, timeout).await,
        Command::Status => return launch::status(session, cli.format).await,
        Command::Completion { .. } | Command::Man { .. } => return Ok(()),
        Command::Server { verb } => match verb {
            servers::ServerVerb::List => (&kinds::SERVER, Verb::List),
            servers::ServerVerb::Set(args) => (&kinds::SERVER, Verb::Set(args)),
            servers::ServerVerb::Show { name } => (&kinds::SERVER, Verb::Show { name }),
            other => return servers::run(session, other, cli.format, &cli.columns).await,
        },
        Command::Image { verb } => match verb {
            images::ImageVerb::List => (&kinds::IMAGE, Verb::List),
            images::ImageVerb::Show { name } => (&kinds::IMAGE, Verb::Show { name }),
            images::ImageVerb::Set(args) => (&kinds::IMAGE, Verb::Set(args)),
            other => return images::run(session, other, cli.format, &cli.columns).await,
        },
        Command::Flavor { verb } => match verb {
            hardware::FlavorVerb::Common(v) => (&kinds::FLAVOR, v),
            other => return hardware::flavor(session, other, cli.format, &cli.columns).await,
        },
        Command::Network { verb } => match verb {
            create::NetworkVerb::Common(v) => (&kinds::NETWORK, v),
            other => return create::network(session, other, cli.format, &cli.columns).await,
        },
        Command::Lease { verb } => match verb {
            leases::LeaseVerb::List => (&kinds::LEASE, Verb::List),
            leases::LeaseVerb::Show { name } => (&kinds::LEASE, Verb::Show { name }),
            other => return leases::run(session, other, cli.format, &cli.columns).await,
        },
        Command::Subnet { verb } => match verb {
            create::SubnetVerb::Common(v) => (&kinds::SUBNET, v),
            other => return create::subnet(session, other, cli.format, &cli.columns).await,
        },
        Command::Router { verb } => match verb {
            create::RouterVerb::Common(v) => (&kinds::ROUTER, v),
            other => return create::router(session, other, cli.format, &cli.columns).await,
        },
        Command::Port { verb } => match verb {
            create::PortVerb::Common(v) => (&kinds::PORT, v),
            other => return create::port(session, other, cli.format, &cli.columns).await,
        },
        Command::Sg { verb } => match verb {
            create::SgVerb::Common(v) => (&kinds::SECURITY_GROUP, v),
            other => return create::security_group(session, other, cli.format, &cli.columns).await,
        },
        Command::Fip { verb } => match verb {
            create::FipVerb::Common(v) => (&kinds::FLOATING_IP, v),
            other => return create::floating_ip(session, other, cli.format, &cli.columns).await,
        },
        Command::Volume { verb } => match verb {
            create::VolumeVerb::Common(v) => (&kinds::VOLUME, v),
            other => return create::volume(session, other, cli.format, &cli.columns).await,
        },
        Command::Project { verb } => match verb {
            accounts::ProjectVerb::Common(v) => (&kinds::PROJECT, v),
            other => return accounts::project(session, other, cli.format, &cli.columns).await,
        },
        Command::User { verb } => match verb {
            accounts::UserVerb::Common(v) => (&kinds::USER, v),
            other => return accounts::user(session, other, cli.format, &cli.columns).await,
        },
        Command::Quota { verb } => return quotas::quota(session, verb, cli.format, &cli.columns).await,
        Command::Usage { project, start, end } => {
            return quotas::usage_report(
                session,
                project.as_deref(),
                start.as_deref(),
                end.as_deref(),
                cli.format,
                &cli.columns,
            )
            .await
        }
        Command::Host { verb } => match verb {
            hardware::HostVerb::Common(v) => (&kinds::HOST, v),
            other => return hardware::host(session, other, cli.format, &cli.columns).await,
        },
        Command::Node { verb } => match verb {
            hardware::NodeVerb::Common(v) => (&kinds::NODE, v),
            other => return hardware::node(session, other, cli.format, &cli.columns).await,
        },
        Command::Token { verb: TokenVerb::Issue } => {
            let record = serde_json::json!({
                "id": session.token(), "expires": session.expires_at(),
                "project_id": session.project_id(), "user_id": session.user_id(),
            });
            return output::record(&record, cli.format, &cli.columns).map_err(usage);
        }
    };
    match verb {
        Verb::List => {
            let rows = kind.list(session).await?;
            output::table(kind, &rows, cli.format, &cli.columns).map_err(usage)
        }
        Verb::Show { name } => {
            let one = find(kind, session, &name).await?;
            output::record(&one, cli.format, &cli.columns).map_err(usage)
        }
        Verb::Delete { names, wait } => {
            let mut deleted = Vec::new();
            for name in &names {
                let one = find(kind, session, name).await?;
                let id = kinds::id_text(&one[kind.id_field]);
                kind.delete(session, &id).await?;
                deleted.push(id);
            }
            if wait.wait {
                for id in &deleted {
                    wait::wait_for(session, kind, id, "GONE", wait.timeout).await?;
                }
            }
            Ok(())
        }
        Verb::Set(args) => {
            let (fields, properties) = set_fields(kind, &args)?;
            let one = find(kind, session, &args.name).await?;
            let changed = kind.update(session, &kinds::id_text(&one[kind.id_field]), fields, &properties).await?;
            output::record(&changed, cli.format, &cli.columns).map_err(usage)
        }
    }
}

/// What `set` sends (fields, and property changes), checked against what the kind can
/// change before anything is read.
pub fn set_fields(kind: &Kind, args: &SetArgs) -> Result<(serde_json::Map<String, Value>, PropertyChanges), Failure> {
    let Some(update) = &kind.update else { return Err(usage(format!("a {} cannot be changed with set", kind.noun))) };
    let mut fields = serde_json::Map::new();
    if let Some(n) = &args.new_name {
        if !update.name {
            return Err(usage(format!("a {} has no name to change", kind.noun)));
        }
        if n.trim().is_empty() {
            return Err(usage("--name needs a name".into()));
        }
        fields.insert(kind.name_field.into(), Value::String(n.clone()));
    }
    if let Some(d) = &args.description {
        if !update.description {
            return Err(usage(format!("a {} has no description", kind.noun)));
        }
        fields.insert("description".into(), Value::String(d.clone()));
    }
    if args.enable || args.disable {
        let Some(field) = update.enabled_field else {
            return Err(usage(format!("a {} cannot be enabled or disabled", kind.noun)));
        };
        fields.insert(field.into(), Value::Bool(args.enable));
    }
    let properties = args.property_changes()?;
    if !properties.is_empty() && update.properties.is_none() {
        return Err(usage(format!("a {} has no properties", kind.noun)));
    }
    if fields.is_empty() && properties.is_empty() {
        return Err(usage(
            "nothing to change: give --name, --description, --enable, --disable, --property or --unset-property".into(),
        ));
    }
    Ok((fields, properties))
}

/// `stratus.1`, and `stratus-<command>.1` for every command and sub-command.
fn man_pages(dir: &std::path::Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure { code: 1, message: format!("cannot write into {}: {e}", dir.display()) };
    std::fs::create_dir_all(dir).map_err(fail)?;
    fn write(cmd: clap::Command, name: &str, dir: &std::path::Path) -> std::io::Result<()> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone()).title(name).render(&mut out)?;
        std::fs::write(dir.join(format!("{name}.1")), out)?;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            write(sub.clone(), &format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    let mut cmd = examples::with_examples(<Cli as clap::CommandFactory>::command());
    cmd.build();
    write(cmd, "stratus", dir).map_err(fail)
}

pub fn usage(message: String) -> Failure {
    Failure { code: 2, message }
}

/// One resource by ID, or else by exact name (more than one of that name: ask for the ID).
/// One of `kind` by ID or exact name (the client library's [`Kind::find`]).
pub async fn find(kind: &Kind, session: &Session, name: &str) -> Result<Value, Failure> {
    Ok(kind.find(session, name).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(new_name: Option<&str>, description: Option<&str>, enable: bool, disable: bool) -> SetArgs {
        SetArgs {
            name: "x".into(),
            new_name: new_name.map(str::to_string),
            description: description.map(str::to_string),
            enable,
            disable,
            properties: Vec::new(),
            unset_properties: Vec::new(),
        }
    }

    #[test]
    fn set_sends_what_the_kind_can_change_and_refuses_the_rest() {
        let fields = |k: &Kind, a: SetArgs| set_fields(k, &a).ok().map(|(f, p)| (Value::Object(f), p));
        let f = fields(&kinds::NETWORK, args(Some("n2"), Some("d"), false, true)).unwrap();
        assert_eq!(f, (serde_json::json!({"name": "n2", "description": "d", "admin_state_up": false}), vec![]));
        let f = fields(&kinds::PROJECT, args(None, None, true, false)).unwrap();
        assert_eq!(f.0, serde_json::json!({"enabled": true}));
        let mut props = args(None, None, false, false);
        props.properties = vec!["node_type=gpu".into(), "note=a=b".into()];
        props.unset_properties = vec!["old".into()];
        let want = vec![
            ("node_type".to_string(), Some("gpu".to_string())),
            ("note".to_string(), Some("a=b".to_string())),
            ("old".to_string(), None),
        ];
        assert_eq!(fields(&kinds::HOST, props).unwrap(), (serde_json::json!({}), want));
        let code = |k: &Kind, a: SetArgs| set_fields(k, &a).err().map(|e| (e.code, e.message));
        let (c, m) = code(&kinds::FLAVOR, args(Some("f"), None, false, false)).unwrap();
        assert!(c == 2 && m.contains("no name"), "flavors keep their names: {m}");
        assert!(code(&kinds::HOST, args(None, Some("d"), false, false)).unwrap().1.contains("no description"));
        let mut bad = args(None, None, false, false);
        bad.properties = vec!["novalue".into()];
        assert!(code(&kinds::IMAGE, bad).unwrap().1.contains("KEY=VALUE"));
        let mut none = args(None, None, false, false);
        none.properties = vec!["k=v".into()];
        assert!(code(&kinds::NETWORK, none).unwrap().1.contains("no properties"));
        let (c, m) = code(&kinds::FLOATING_IP, args(Some("1.2.3.4"), None, false, false)).unwrap();
        assert!(c == 2 && m.contains("no name"), "{m}");
        assert!(code(&kinds::SERVER, args(None, None, false, true)).unwrap().1.contains("cannot be enabled"));
        assert!(code(&kinds::VOLUME, args(None, None, false, false)).unwrap().1.contains("nothing to change"));
        assert!(code(&kinds::VOLUME, args(Some(" "), None, false, false)).unwrap().1.contains("needs a name"));
    }

    #[test]
    fn enable_and_disable_together_are_a_usage_error() {
        let parsed = <Cli as clap::Parser>::try_parse_from(["stratus", "project", "set", "p", "--enable", "--disable"]);
        assert!(parsed.is_err());
        assert!(<Cli as clap::Parser>::try_parse_from(["stratus", "server", "set", "s", "--name", "t"]).is_ok());
    }
}
