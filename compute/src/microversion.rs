//! Compute API microversions: what the client asked for (`OpenStack-API-Version:
//! compute X.Y` or `X-OpenStack-Nova-API-Version: X.Y`), negotiated against what this
//! service implements (see `stratus_common::http::microversion`). Responses are shaped
//! by the version: a field added in 2.47 appears only when the request asked for 2.47
//! or later.

use stratus_common::http::microversion::Api;
pub use stratus_common::http::microversion::Version;

/// The oldest and newest versions served.
pub const MIN: Version = Version(2, 1);
pub const MAX: Version = Version(2, 96);

pub static API: Api =
    Api { service: "compute", min: MIN, max: MAX, legacy_header: Some("x-openstack-nova-api-version") };
