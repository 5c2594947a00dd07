//! The node's states and the provisioning state machine, as Ironic names them.
//!
//! A provisioning verb (`manage`, `provide`, `inspect`, `active`, `deleted`, ...) is
//! accepted only from some states; it moves the node at once to a transitional state
//! (`verifying`, `cleaning`, `deploying`, ...) with the state it aims for as its target,
//! and the conductor then does the work and lands the node on the target, or on the
//! verb's failure state with `last_error` saying why.

use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a node is in its life (Ironic's `provision_state`).
    ProvisionState {
        Enroll => "enroll",
        Verifying => "verifying",
        Manageable => "manageable",
        Inspecting => "inspecting",
        InspectFailed => "inspect failed",
        Cleaning => "cleaning",
        CleanWait => "clean wait",
        CleanFailed => "clean failed",
        Available => "available",
        Deploying => "deploying",
        WaitCallBack => "wait call-back",
        DeployFailed => "deploy failed",
        Active => "active",
        Deleting => "deleting",
        Error => "error",
    }
);

impl ProvisionState {
    /// States the conductor is working in: the node is busy until it leaves them.
    pub fn is_transitional(self) -> bool {
        matches!(self, Self::Verifying | Self::Inspecting | Self::Cleaning | Self::Deploying | Self::Deleting)
            || self.is_waiting()
    }

    /// States in which the node runs the deploy ramdisk and the conductor waits for it
    /// to report (or for the wait to time out).
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::WaitCallBack | Self::CleanWait)
    }

    /// Where a failure in this transitional state leaves the node (itself when at rest).
    pub fn on_failure(self) -> Self {
        match self {
            Self::Verifying => Self::Enroll,
            Self::Inspecting => Self::InspectFailed,
            Self::Cleaning | Self::CleanWait => Self::CleanFailed,
            Self::Deploying | Self::WaitCallBack => Self::DeployFailed,
            Self::Deleting => Self::Error,
            other => other,
        }
    }
}

string_enum!(
    /// A node's power as its BMC reports it.
    PowerState {
        On => "power on",
        Off => "power off",
    }
);

string_enum!(
    /// What a power request asks for (`PUT /v1/nodes/{id}/states/power`).
    PowerTarget {
        On => "power on",
        Off => "power off",
        Reboot => "rebooting",
        SoftOff => "soft power off",
        SoftReboot => "soft rebooting",
    }
);

impl PowerTarget {
    /// The power state the node has once the request is done.
    pub fn end_state(self) -> PowerState {
        match self {
            Self::Off | Self::SoftOff => PowerState::Off,
            _ => PowerState::On,
        }
    }
}

string_enum!(
    /// A boot device a BMC can be told to boot from next.
    BootDevice {
        Pxe => "pxe",
        Disk => "disk",
        Cdrom => "cdrom",
        Bios => "bios",
    }
);

string_enum!(
    /// The provisioning verbs of `PUT /v1/nodes/{id}/states/provision`.
    Verb {
        Manage => "manage",
        Provide => "provide",
        Inspect => "inspect",
        Clean => "clean",
        Deploy => "active",
        Rebuild => "rebuild",
        Undeploy => "deleted",
    }
);

/// What a verb does: the states it is accepted from, the transitional state it moves
/// the node to (`None`: it lands at once) and where it ends. Where a failure leaves the
/// node follows from the transitional state ([`ProvisionState::on_failure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: &'static [ProvisionState],
    pub during: Option<ProvisionState>,
    pub target: ProvisionState,
}

impl Verb {
    /// The oldest API microversion that knows the verb.
    pub fn min_version(self) -> u32 {
        match self {
            Self::Manage | Self::Provide => 4,
            Self::Inspect => 6,
            Self::Clean => 15,
            _ => 1,
        }
    }

    /// The verb's transition. `manage` verifies the BMC from `enroll` and simply lands
    /// from the other states; `provide` and `deleted` go through cleaning.
    pub fn transition(self, from: ProvisionState) -> Transition {
        use ProvisionState::*;
        match self {
            Self::Manage => Transition {
                from: &[Enroll, Available, InspectFailed, CleanFailed, Manageable],
                during: (from == Enroll).then_some(Verifying),
                target: Manageable,
            },
            Self::Provide => Transition { from: &[Manageable], during: Some(Cleaning), target: Available },
            Self::Inspect => {
                Transition { from: &[Manageable, InspectFailed], during: Some(Inspecting), target: Manageable }
            }
            Self::Clean => Transition { from: &[Manageable], during: Some(Cleaning), target: Manageable },
            Self::Deploy => Transition { from: &[Available, DeployFailed], during: Some(Deploying), target: Active },
            Self::Rebuild => Transition { from: &[Active], during: Some(Deploying), target: Active },
            Self::Undeploy => {
                Transition { from: &[Active, DeployFailed, Error], during: Some(Deleting), target: Available }
            }
        }
    }
}

/// The work the conductor owes a node, kept on the node until it is done, so a restart
/// finds and finishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Provision(Verb),
    Power(PowerTarget),
}

impl Work {
    pub fn encode(self) -> String {
        match self {
            Self::Provision(v) => format!("provision:{v}"),
            Self::Power(p) => format!("power:{p}"),
        }
    }
}

impl FromStr for Work {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("provision", v)) => Ok(Self::Provision(v.parse()?)),
            Some(("power", p)) => Ok(Self::Power(p.parse()?)),
            _ => Err(format!("unknown work {s:?}")),
        }
    }
}

/// The hardware types (Ironic's drivers) this service runs, and their interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareType {
    Redfish,
    Ipmi,
    Fake,
}

impl HardwareType {
    pub const ALL: &'static [HardwareType] = &[Self::Redfish, Self::Ipmi, Self::Fake];

    pub fn name(self) -> &'static str {
        match self {
            Self::Redfish => "redfish",
            Self::Ipmi => "ipmi",
            Self::Fake => "fake-hardware",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|h| h.name() == s)
    }

    /// The power and management interface's name.
    pub fn power_interface(self) -> &'static str {
        match self {
            Self::Redfish => "redfish",
            Self::Ipmi => "ipmitool",
            Self::Fake => "fake",
        }
    }

    /// Deploy interfaces a node of this type may use; the first is the default.
    pub fn deploy_interfaces(self) -> &'static [&'static str] {
        match self {
            // Fake hardware can run the direct deploy's protocol (tests drive its ramdisk).
            Self::Fake => &["fake", "direct"],
            _ => &["direct", "fake"],
        }
    }

    /// The `driver_info` keys a node must have, and the optional ones.
    pub fn driver_info_keys(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Self::Redfish => (
                &["redfish_address", "redfish_system_id"],
                &["redfish_username", "redfish_password", "redfish_verify_ca", "deploy_kernel", "deploy_ramdisk"],
            ),
            Self::Ipmi => (
                &["ipmi_address"],
                &["ipmi_port", "ipmi_username", "ipmi_password", "ipmi_priv_level", "deploy_kernel", "deploy_ramdisk"],
            ),
            Self::Fake => (&[], &[]),
        }
    }
}

/// `driver_info` keys whose values are secrets: never shown back.
pub fn is_secret_key(key: &str) -> bool {
    key.ends_with("password") || key.ends_with("_secret") || key.ends_with("_key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_ones_are_refused() {
        for s in ProvisionState::ALL {
            assert_eq!(s.as_str().parse::<ProvisionState>().unwrap(), *s);
        }
        assert!("deployed".parse::<ProvisionState>().is_err());
        for w in [Work::Provision(Verb::Deploy), Work::Power(PowerTarget::SoftReboot)] {
            assert_eq!(w.encode().parse::<Work>().unwrap(), w);
        }
        assert!("power:sideways".parse::<Work>().is_err());
    }

    #[test]
    fn failures_land_where_the_verb_can_be_retried() {
        assert_eq!(ProvisionState::Verifying.on_failure(), ProvisionState::Enroll);
        assert_eq!(ProvisionState::Deleting.on_failure(), ProvisionState::Error);
        for s in ProvisionState::ALL {
            assert!(!s.on_failure().is_transitional(), "{s}");
        }
    }

    #[test]
    fn manage_verifies_only_from_enroll() {
        let t = Verb::Manage.transition(ProvisionState::Enroll);
        assert_eq!(t.during, Some(ProvisionState::Verifying));
        let t = Verb::Manage.transition(ProvisionState::Available);
        assert_eq!(t.during, None);
        assert_eq!(t.target, ProvisionState::Manageable);
    }

    #[test]
    fn deploy_needs_an_available_node() {
        let t = Verb::Deploy.transition(ProvisionState::Enroll);
        assert!(!t.from.contains(&ProvisionState::Enroll));
        assert!(t.from.contains(&ProvisionState::Available));
        assert!(ProvisionState::Deploying.is_transitional());
        assert!(!ProvisionState::Active.is_transitional());
    }
}
