//! Server commands that change things: create (names resolved to IDs) and delete, each
//! with `--wait` ([`crate::wait`]).

use crate::wait::wait_for;
use crate::{find, kinds, output, usage, Failure, Format};
use clap::Subcommand;
use serde_json::{json, Value};
use stratus_client::session::Method;
use stratus_client::Session;

#[derive(Subcommand)]
pub enum ServerVerb {
    /// List the project's servers
    List,
    /// Show one, by name or ID
    Show {
        /// Its name or ID
        name: String,
    },
    /// Boot a server
    Create {
        /// Its name
        name: String,
        /// Image, by name or ID
        #[arg(long)]
        image: String,
        /// Flavor, by name or ID
        #[arg(long)]
        flavor: String,
        /// Networks to attach, by name or ID (repeat for more; none: the project's
        /// only network, as the cloud picks it)
        #[arg(long = "network")]
        networks: Vec<String>,
        /// A keypair to inject
        #[arg(long)]
        key: Option<String>,
        /// Land in a lease's reservation (its ID)
        #[arg(long)]
        reservation: Option<String>,
        /// Wait until it is ACTIVE
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Delete servers, by name or ID
    Delete {
        /// Their names or IDs
        #[arg(required = true)]
        names: Vec<String>,
        /// Wait until they are gone
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

pub async fn run(s: &Session, verb: ServerVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    match verb {
        ServerVerb::List | ServerVerb::Show { .. } => Err(usage("list and show are not handled here".into())),
        ServerVerb::Create { name, image, flavor, networks, key, reservation, wait, timeout } => {
            let image = id_of(&find(&kinds::IMAGE, s, &image).await?);
            let flavor = id_of(&find(&kinds::FLAVOR, s, &flavor).await?);
            let mut nets = Vec::new();
            for n in &networks {
                nets.push(json!({"uuid": id_of(&find(&kinds::NETWORK, s, n).await?)}));
            }
            let mut server = json!({"name": name, "imageRef": image, "flavorRef": flavor,
                                    "networks": if nets.is_empty() { json!("auto") } else { json!(nets) }});
            if let Some(k) = key {
                server["key_name"] = json!(k);
            }
            let mut body = json!({ "server": server });
            if let Some(r) = reservation {
                body["os:scheduler_hints"] = json!({ "reservation": r });
            }
            let made = s.call(Method::POST, "compute", "/servers", Some(&body), kinds::SERVER.headers).await?;
            let id = made["server"]["id"].as_str().unwrap_or_default().to_string();
            let shown = if wait {
                wait_for(s, &kinds::SERVER, &id, "ACTIVE", timeout).await?
            } else {
                kinds::SERVER.show(s, &id).await?
            };
            output::record(&shown, format, columns).map_err(usage)
        }
        ServerVerb::Delete { names, wait, timeout } => {
            let mut ids = Vec::new();
            for n in &names {
                ids.push(id_of(&find(&kinds::SERVER, s, n).await?));
            }
            for id in &ids {
                s.call(Method::DELETE, "compute", &format!("/servers/{id}"), None, kinds::SERVER.headers).await?;
            }
            if wait {
                for id in &ids {
                    wait_for(s, &kinds::SERVER, id, "GONE", timeout).await?;
                }
            }
            Ok(())
        }
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().map(str::to_string).unwrap_or_else(|| v["id"].to_string())
}
