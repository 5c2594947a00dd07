//! Compute API microversions: what the client asked for (`OpenStack-API-Version:
//! compute X.Y` or `X-OpenStack-Nova-API-Version: X.Y`), negotiated against what this
//! service implements. Responses are shaped by the version: a field added in 2.47
//! appears only when the request asked for 2.47 or later.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use stratus_common::http::ApiError;

/// The oldest and newest versions served.
pub const MIN: Version = Version(2, 1);
pub const MAX: Version = Version(2, 96);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u16, pub u16);

impl Version {
    pub fn at_least(self, minor: u16) -> bool {
        self >= Version(2, minor)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.trim().split_once('.')?;
        Some(Version(a.parse().ok()?, b.parse().ok()?))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Picks the version from the request headers: absent means 2.1, `latest` the newest.
pub fn negotiate(openstack: Option<&str>, legacy: Option<&str>) -> Result<Version, ApiError> {
    let asked = openstack
        .and_then(|v| {
            // "compute 2.61" (possibly among other services, comma separated)
            v.split(',').map(str::trim).find_map(|part| part.strip_prefix("compute ").map(str::trim))
        })
        .or(legacy.map(str::trim));
    let Some(asked) = asked else { return Ok(MIN) };
    if asked.eq_ignore_ascii_case("latest") {
        return Ok(MAX);
    }
    let v = Version::parse(asked)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid API version request string {asked}.")))?;
    if v < MIN || v > MAX {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("Version {v} is not supported by the API. Minimum is {MIN} and maximum is {MAX}."),
        ));
    }
    Ok(v)
}

impl<S: Send + Sync> FromRequestParts<S> for Version {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        negotiate(h("openstack-api-version"), h("x-openstack-nova-api-version"))
    }
}

/// Adds the negotiated version to every response, as Nova does.
pub async fn version_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let v = {
        let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        negotiate(h("openstack-api-version").as_deref(), h("x-openstack-nova-api-version").as_deref()).ok()
    };
    let mut resp = next.run(req).await;
    if let Some(v) = v {
        let headers = resp.headers_mut();
        if let Ok(val) = format!("compute {v}").parse() {
            headers.insert("openstack-api-version", val);
        }
        if let Ok(val) = v.to_string().parse() {
            headers.insert("x-openstack-nova-api-version", val);
        }
        headers.insert(
            "vary",
            axum::http::HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None, None).unwrap(), Version(2, 1));
        assert_eq!(negotiate(Some("compute 2.61"), None).unwrap(), Version(2, 61));
        assert_eq!(negotiate(Some("volume 3.5, compute 2.47"), None).unwrap(), Version(2, 47));
        assert_eq!(negotiate(None, Some("2.61")).unwrap(), Version(2, 61));
        assert_eq!(negotiate(Some("compute latest"), None).unwrap(), MAX);
        assert_eq!(negotiate(Some("compute 2.200"), None).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(negotiate(Some("compute x"), None).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(Version(2, 10) > Version(2, 9));
    }
}
