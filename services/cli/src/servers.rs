//! Server commands that change things: create (names resolved to IDs), snapshot and
//! delete, each with `--wait` ([`crate::wait`]).

use crate::wait::{wait_for, WaitArgs};
use crate::{find, kinds, output, usage, Failure, Format};
use clap::Subcommand;
use serde_json::json;
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
    #[command(
        after_help = "Examples:\n  stratus server create web-1 --image debian-12 --flavor m1.small --network private --wait\n  stratus server create db-1 --image debian-12 --flavor m1.large --key mykey --network private --network storage\n  stratus server create bm-1 --image debian-12 --flavor baremetal --reservation RESERVATION_ID --wait --timeout 1800"
    )]
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
        #[command(flatten)]
        waiting: WaitArgs,
    },
    /// Change a server: rename it or describe it
    #[command(after_help = "Example:\n  stratus server set web-1 --name web-old --description \"kept for a week\"")]
    Set(crate::SetArgs),
    /// Snapshot a server's disk into a new image of the project
    #[command(after_help = "Example:\n  stratus server snapshot web-1 --name web-1-before-upgrade --wait")]
    Snapshot {
        /// The server's name or ID
        server: String,
        /// The new image's name
        #[arg(long = "name", value_name = "IMAGE_NAME")]
        image_name: String,
        #[command(flatten)]
        waiting: WaitArgs,
    },
    /// Delete servers, by name or ID
    Delete {
        /// Their names or IDs
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        waiting: WaitArgs,
    },
}

pub async fn run(s: &Session, verb: ServerVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    match verb {
        ServerVerb::List | ServerVerb::Show { .. } | ServerVerb::Set(_) => {
            Err(usage("list, show and set are not handled here".into()))
        }
        ServerVerb::Create { name, image, flavor, networks, key, reservation, waiting } => {
            let image = kinds::id_text(&find(&kinds::IMAGE, s, &image).await?["id"]);
            let flavor = kinds::id_text(&find(&kinds::FLAVOR, s, &flavor).await?["id"]);
            let mut nets = Vec::new();
            for n in &networks {
                nets.push(json!({"uuid": kinds::id_text(&find(&kinds::NETWORK, s, n).await?["id"])}));
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
            let shown = if waiting.wait {
                wait_for(s, &kinds::SERVER, &id, "ACTIVE", waiting.timeout).await?
            } else {
                kinds::SERVER.show(s, &id).await?
            };
            output::record(&shown, format, columns).map_err(usage)
        }
        ServerVerb::Snapshot { server, image_name, waiting } => {
            if image_name.trim().is_empty() {
                return Err(usage("--name needs a name".into()));
            }
            let id = kinds::id_text(&find(&kinds::SERVER, s, &server).await?["id"]);
            let body = json!({"createImage": {"name": image_name}});
            let path = format!("/servers/{id}/action");
            let made = s
                .call(Method::POST, "compute", &path, Some(&body), &[("OpenStack-API-Version", "compute 2.45")])
                .await?;
            let image = made["image_id"].as_str().unwrap_or_default().to_string();
            let shown = if waiting.wait {
                wait_for(s, &kinds::IMAGE, &image, "active", waiting.timeout).await?
            } else {
                kinds::IMAGE.show(s, &image).await?
            };
            output::record(&shown, format, columns).map_err(usage)
        }
        ServerVerb::Delete { names, waiting } => {
            let mut ids = Vec::new();
            for n in &names {
                ids.push(kinds::id_text(&find(&kinds::SERVER, s, n).await?["id"]));
            }
            for id in &ids {
                s.call(Method::DELETE, "compute", &format!("/servers/{id}"), None, kinds::SERVER.headers).await?;
            }
            if waiting.wait {
                for id in &ids {
                    wait_for(s, &kinds::SERVER, id, "GONE", waiting.timeout).await?;
                }
            }
            Ok(())
        }
    }
}
