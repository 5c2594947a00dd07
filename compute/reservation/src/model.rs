//! The reservation service's states and time formats, typed. States are stored and
//! shown as Blazar's strings; an unknown string read back is an error, never a default.

use chrono::{DateTime, NaiveDateTime, Utc};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// A lease's life: PENDING until its start, STARTING while its hosts are handed
    /// over, ACTIVE in its window, TERMINATING while they are taken back, then
    /// TERMINATED; ERROR when an event failed for good.
    LeaseStatus {
        Pending => "PENDING",
        Starting => "STARTING",
        Active => "ACTIVE",
        Terminating => "TERMINATING",
        Terminated => "TERMINATED",
        Error => "ERROR",
    }
);

string_enum!(
    /// A reservation within a lease.
    ReservationStatus {
        Pending => "pending",
        Active => "active",
        Deleted => "deleted",
        Error => "error",
    }
);

string_enum!(
    /// What an event does when its time comes.
    EventType {
        StartLease => "start_lease",
        BeforeEndLease => "before_end_lease",
        EndLease => "end_lease",
    }
);

string_enum!(
    /// An event's progress: UNDONE until due, IN_PROGRESS while fired (retried after a
    /// crash or a failure, each action being idempotent), DONE, or ERROR when it failed
    /// too often.
    EventStatus {
        Undone => "UNDONE",
        InProgress => "IN_PROGRESS",
        Done => "DONE",
        Error => "ERROR",
    }
);

/// The resource types a reservation may name.
pub const PHYSICAL_HOST: &str = "physical:host";
pub const VIRTUAL_FLOATINGIP: &str = "virtual:floatingip";
pub const FLAVOR_INSTANCE: &str = "flavor:instance";

/// A date a client sends: `now`, Blazar's `YYYY-MM-DD HH:MM`, or with seconds (and
/// fractions, a `T`, a trailing `Z`) as ISO 8601. Always UTC.
pub fn parse_date(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    if let Ok(z) = DateTime::parse_from_rfc3339(t) {
        return Some(z.with_timezone(&Utc));
    }
    let t = t.trim_end_matches('Z').replace('T', " ");
    ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&t, f).ok())
        .map(|n| n.and_utc())
}

/// A lease's dates as Blazar shows them (python-chi parses `%Y-%m-%dT%H:%M:%S.%f`).
pub fn lease_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Creation and update times as Blazar shows them (`isoformat(' ')` of a time without
/// fractions: python-chi parses `%Y-%m-%d %H:%M:%S`).
pub fn record_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A stored time (RFC 3339) read back; a malformed one is a bug in the data.
pub fn stored(text: &str) -> anyhow::Result<DateTime<Utc>> {
    stratus_common::db::parse_time(text).ok_or_else(|| anyhow::anyhow!("malformed stored time {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_form_clients_send() {
        let now = Utc::now();
        assert_eq!(parse_date("now", now), Some(now));
        let want = NaiveDateTime::parse_from_str("2030-01-01 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap().and_utc();
        for t in ["2030-01-01 10:00", "2030-01-01 10:00:00", "2030-01-01T10:00:00.000000", "2030-01-01T10:00:00Z"] {
            assert_eq!(parse_date(t, now), Some(want), "{t}");
        }
        assert_eq!(parse_date("tomorrow", now), None);
        assert_eq!(parse_date("2030-13-01 10:00", now), None);
        assert_eq!(lease_date(want), "2030-01-01T10:00:00.000000");
        assert_eq!(record_time(want), "2030-01-01 10:00:00");
    }

    #[test]
    fn states_read_strictly() {
        assert_eq!("ACTIVE".parse::<LeaseStatus>(), Ok(LeaseStatus::Active));
        assert!("active".parse::<LeaseStatus>().is_err());
        assert_eq!(EventType::EndLease.as_str(), "end_lease");
        assert!("later".parse::<EventStatus>().is_err());
    }
}
