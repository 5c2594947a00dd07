//! The daemon as a library: its configuration, the runtime that builds each service,
//! and [`all_in_one`], every service of one process. The `stratusd` binary is a thin
//! command line over it; tests (the client library's among them) start a whole cloud
//! in-process with it.

pub mod config;
pub mod runtime;

use config::Config;
use runtime::{Runtime, Served};
use std::sync::Arc;
use stratus_common::config::Switch;
use stratus_identity::app::BootstrapReport;

/// Every service of all-in-one, bootstrapped and built, with its agents running; the
/// services are not yet listening ([`runtime::serve_all`], [`runtime::bind_all`]).
pub struct AllInOne {
    pub rt: Runtime,
    /// What the bootstrap made (the admin password, when it made the admin now).
    pub report: BootstrapReport,
    pub services: Vec<Served>,
}

/// Opens the database and bus, bootstraps identity (the admin's password: `password`,
/// else the configuration's, else generated), builds every service and starts the
/// agents the configuration asks for.
pub async fn all_in_one(config: Config, password: Option<String>) -> anyhow::Result<AllInOne> {
    let rt = Runtime::open(config).await?;
    let identity = rt.identity().await?;
    let report = rt.bootstrap(&identity, password).await?;
    let limits = Arc::new(stratus_identity::app::InProcessLimitsSource::new(identity.store.clone()));
    let image = rt.image_served(identity.verifier.clone(), limits.clone()).await?;
    let network = rt.network_served(identity.verifier.clone(), limits.clone()).await?;
    let tokens = runtime::InternalTokens::new(identity.clone());
    let volume = rt.volume_served(identity.verifier.clone(), limits.clone(), tokens.clone()).await?;
    let compute = rt.compute_served(identity.verifier.clone(), limits, tokens.clone()).await?;
    let reservation = rt.reservation_served(identity.verifier.clone(), tokens.clone())?;
    let baremetal = rt.baremetal_served(identity.verifier.clone(), tokens.clone())?;
    let mut services = vec![rt.identity_served(identity)?, image, network, volume, reservation, baremetal];
    services.extend(compute);
    if rt.config.compute_agent.enabled {
        let agent = runtime::compute_agent(&rt.config, rt.bus.clone(), tokens.clone())?;
        tracing::info!(driver = agent.driver_name(), "compute agent running");
        agent.report_all().await;
        stratus_common::supervisor::SUPERVISOR.spawn("compute-agent", move |_task| agent.clone().run());
        if rt.config.compute_agent.baremetal_nodes && runtime::compute_driver(&rt.config) != "ironic" {
            // The bare-metal nodes are hosts too, through an agent of their own.
            let name = format!("{}-baremetal", runtime::compute_agent_name(&rt.config));
            let nodes = runtime::baremetal_compute_agent(&rt.config, &name, rt.bus.clone(), tokens.clone())?;
            tracing::info!(agent = %name, "bare-metal compute agent running");
            stratus_common::supervisor::SUPERVISOR.spawn("baremetal-compute-agent", move |_task| {
                let nodes = nodes.clone();
                async move {
                    nodes.report_all().await;
                    nodes.run().await
                }
            });
        }
    }
    if agent_wanted(rt.config.network_agent.enabled) {
        let agent = runtime::network_agent(&rt.config, tokens)?;
        tracing::info!(host = agent.host(), "network agent running");
        let bus = rt.bus.clone();
        stratus_common::supervisor::SUPERVISOR.spawn("network-agent", move |_task| {
            let (agent, bus) = (agent.clone(), bus.clone());
            async move {
                agent.run(Some(bus)).await;
                Ok(())
            }
        });
    } else {
        tracing::info!("network agent not running (needs root, iproute2 and nftables; see [network_agent] enabled)");
    }
    Ok(AllInOne { rt, report, services })
}

/// Whether all-in-one runs the network agent (`[network_agent] enabled`).
fn agent_wanted(setting: Switch) -> bool {
    match setting {
        Switch::Auto => stratus_network_agent::kernel::available(),
        Switch::On => true,
        Switch::Off => false,
    }
}
