//! What happens when a port is bound to a host. With the `agent` driver (the default)
//! the port stays `DOWN` until the network agent on that host has wired it and reports
//! `ACTIVE`. The `fake` driver has no data plane: binding makes the port `ACTIVE` at
//! once, so compute can be tested at scale without agents. Never the default.

use serde::{Deserialize, Serialize};

/// What binding a port does (`[network] driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    #[default]
    Agent,
    Fake,
}

stratus_common::from_str_by_serde!(Driver);

impl Driver {
    /// The status a router's interface or gateway port starts with, where the driver
    /// decides it: the fake driver has no router to wait for, so such ports are `ACTIVE`
    /// at once (as Neutron shows them once its L3 agent has wired them).
    pub fn status_of_router_port(self, device_owner: &str) -> Option<crate::app::ports::PortStatus> {
        let router = [crate::app::ports::ROUTER_INTERFACE, crate::app::ports::ROUTER_GATEWAY].contains(&device_owner);
        (self == Driver::Fake && router).then_some(crate::app::ports::PortStatus::Active)
    }

    /// The status a port gets when its binding changes to `host` ("" = unbound).
    pub fn status_on_bind(self, host: &str) -> crate::app::ports::PortStatus {
        use crate::app::ports::PortStatus;
        match self {
            Driver::Fake if !host.is_empty() => PortStatus::Active,
            _ => PortStatus::Down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Driver;

    #[test]
    fn fake_activates_bound_ports_and_agent_waits() {
        use crate::app::ports::PortStatus;
        assert_eq!(Driver::Fake.status_on_bind("h1"), PortStatus::Active);
        assert_eq!(Driver::Fake.status_on_bind(""), PortStatus::Down);
        assert_eq!(Driver::Agent.status_on_bind("h1"), PortStatus::Down);
        assert_eq!(Driver::Fake.status_of_router_port(crate::app::ports::ROUTER_INTERFACE), Some(PortStatus::Active));
        assert_eq!(Driver::Fake.status_of_router_port("compute:nova"), None);
        assert_eq!(Driver::Agent.status_of_router_port(crate::app::ports::ROUTER_INTERFACE), None);
        assert!("ovs".parse::<Driver>().is_err());
        assert_eq!("fake".parse::<Driver>().unwrap(), Driver::Fake);
    }
}
