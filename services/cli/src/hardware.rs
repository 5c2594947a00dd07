//! Making the hardware a cloud offers: flavors (the shapes servers come in),
//! reservable hosts (Blazar's `os-hosts`: a hypervisor or a bare-metal node made
//! reservable, with its capabilities) and bare-metal nodes (Ironic's nodes: a driver,
//! how to reach the BMC, a resource class).

use crate::{key_values, kinds, output, usage, Failure, Format, Verb};
use clap::Subcommand;
use serde_json::{json, Map, Value};
use stratus_client::session::Method;
use stratus_client::Session;

#[derive(Subcommand)]
pub enum FlavorVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a flavor (admin): vCPUs, memory and disk, public or given to projects
    #[command(after_help = "Examples:\n  stratus flavor create m1.small --vcpus 1 --ram 2048 --disk 20\n  \
                            stratus flavor create baremetal --vcpus 32 --ram 262144 --disk 400 \\\n    \
                            --property resources:CUSTOM_BAREMETAL=1 --property resources:VCPU=0\n  \
                            stratus flavor create gpu.private --vcpus 8 --ram 65536 --disk 100 --private")]
    Create {
        /// Its name
        name: String,
        /// Virtual CPUs
        #[arg(long)]
        vcpus: u32,
        /// Memory in MiB
        #[arg(long)]
        ram: u64,
        /// Root disk in GiB (0: the image's size)
        #[arg(long, default_value_t = 0)]
        disk: u64,
        /// What it is for
        #[arg(long)]
        description: Option<String>,
        /// Only for the projects it is given to (openstack flavor set --project)
        #[arg(long)]
        private: bool,
        /// An extra spec, KEY=VALUE (repeatable): scheduling hints, resources
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum HostVerb {
    #[command(flatten)]
    Common(Verb),
    /// Make a compute host or bare-metal node reservable (admin), with capabilities
    /// leases can ask for
    #[command(after_help = "Examples:\n  stratus host create compute-1 --property node_type=compute_skylake\n  \
                            stratus host create 6f1c2d3e-node-uuid --property node_type=gpu_a100 --property gpus=4")]
    Create {
        /// The hypervisor's name (a bare-metal node: its UUID)
        name: String,
        /// A capability, KEY=VALUE (repeatable): what leases filter on (`node_type`, ...)
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum NodeVerb {
    #[command(flatten)]
    Common(Verb),
    /// Enroll a bare-metal node (admin): its driver and how to reach its BMC
    #[command(after_help = "Examples:\n  stratus node create --driver redfish --name rack4-n1 \\\n    \
                            --driver-info redfish_address=https://10.0.0.41 --driver-info redfish_system_id=/redfish/v1/Systems/1 \\\n    \
                            --driver-info redfish_username=admin --driver-info redfish_password=secret \\\n    \
                            --resource-class baremetal --property cpus=32 --property memory_mb=262144\n  \
                            stratus node create --driver ipmi --name old-1 --driver-info ipmi_address=10.0.0.52")]
    Create {
        /// The hardware type: redfish, ipmi (or fake-hardware, for tests)
        #[arg(long)]
        driver: String,
        /// Its name
        #[arg(long)]
        name: Option<String>,
        /// How the driver reaches the BMC, KEY=VALUE (repeatable)
        #[arg(long = "driver-info", value_name = "KEY=VALUE")]
        driver_info: Vec<String>,
        /// The resource class flavors ask for (`baremetal`, ...)
        #[arg(long)]
        resource_class: Option<String>,
        /// A hardware property, KEY=VALUE (repeatable): cpus, memory_mb, local_gb, ...
        #[arg(long = "property", value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
}

fn object(flag: &str, items: &[String]) -> Result<Map<String, Value>, Failure> {
    Ok(key_values(flag, items)?.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

pub async fn flavor(s: &Session, verb: FlavorVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let FlavorVerb::Create { name, vcpus, ram, disk, description, private, properties } = verb else { return Ok(()) };
    let specs = object("--property", &properties)?;
    let mut body = json!({"name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
                          "os-flavor-access:is_public": !private});
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    let headers = kinds::FLAVOR.headers;
    let made = s.call(Method::POST, "compute", "/flavors", Some(&json!({ "flavor": body })), headers).await?;
    let id = kinds::id_text(&made["flavor"]["id"]);
    if !specs.is_empty() {
        let path = format!("/flavors/{id}/os-extra_specs");
        s.call(Method::POST, "compute", &path, Some(&json!({ "extra_specs": specs })), headers).await?;
    }
    output::record(&kinds::FLAVOR.show(s, &id).await?, format, columns).map_err(usage)
}

pub async fn host(s: &Session, verb: HostVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let HostVerb::Create { name, properties } = verb else { return Ok(()) };
    let mut body = object("--property", &properties)?;
    if body.contains_key("name") {
        return Err(usage("--property name=...: the host's name is its first argument".into()));
    }
    body.insert("name".into(), json!(name));
    let made = s.call(Method::POST, kinds::HOST.service, "/os-hosts", Some(&Value::Object(body)), &[]).await?;
    output::record(&made["host"], format, columns).map_err(usage)
}

pub async fn node(s: &Session, verb: NodeVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let NodeVerb::Create { driver, name, driver_info, resource_class, properties } = verb else { return Ok(()) };
    let mut body = json!({
        "driver": driver,
        "driver_info": object("--driver-info", &driver_info)?,
        "properties": object("--property", &properties)?,
    });
    if let Some(n) = name {
        body["name"] = json!(n);
    }
    if let Some(c) = resource_class {
        body["resource_class"] = json!(c);
    }
    let made = s.call(Method::POST, kinds::NODE.service, "/v1/nodes", Some(&body), kinds::NODE.headers).await?;
    output::record(&made, format, columns).map_err(usage)
}
