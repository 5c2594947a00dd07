//! API microversions, as Nova and Cinder negotiate them: the client asks with
//! `OpenStack-API-Version: <service> X.Y` (or a service's legacy header, Nova's
//! `X-OpenStack-Nova-API-Version: X.Y`); no header means the oldest version served,
//! `latest` the newest, anything outside the range is 406 and anything unreadable 400.
//!
//! A service describes its range once ([`Api`]) and layers [`version_headers`] over its
//! routes: the layer negotiates once per request, answers with the version it speaks
//! (and `Vary`), and hands the outcome to handlers, which take [`Version`] as an
//! extractor. A handler that takes no `Version` serves every version alike.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16, pub u16);

impl Version {
    /// Whether this version is `major.minor` or later, `major` being this one's.
    pub fn at_least(self, minor: u16) -> bool {
        self >= Version(self.0, minor)
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

/// One service's microversion range.
#[derive(Debug)]
pub struct Api {
    /// The name in `OpenStack-API-Version` (`compute`, `volume`).
    pub service: &'static str,
    pub min: Version,
    pub max: Version,
    /// A header that carries the bare version (lower case), read when the standard
    /// one names no version for this service.
    pub legacy_header: Option<&'static str>,
}

impl Api {
    /// The version asked for in `openstack` (the standard header's value) or `legacy`.
    pub fn negotiate(&self, openstack: Option<&str>, legacy: Option<&str>) -> Result<Version, ApiError> {
        let asked = openstack
            .and_then(|v| {
                // "compute 2.61", possibly among other services, comma separated.
                v.split(',').map(str::trim).find_map(|part| {
                    let (service, version) = part.split_once(char::is_whitespace)?;
                    service.eq_ignore_ascii_case(self.service).then(|| version.trim())
                })
            })
            .or(legacy.map(str::trim));
        let Some(asked) = asked else { return Ok(self.min) };
        if asked.eq_ignore_ascii_case("latest") {
            return Ok(self.max);
        }
        let v = Version::parse(asked)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid API version request string {asked}.")))?;
        if v < self.min || v > self.max {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Version {v} is not supported by the API. Minimum is {} and maximum is {}.",
                    self.min, self.max
                ),
            ));
        }
        Ok(v)
    }

    pub fn from_headers(&self, headers: &HeaderMap) -> Result<Version, ApiError> {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        self.negotiate(h("openstack-api-version"), self.legacy_header.and_then(h))
    }
}

/// The outcome of negotiation, left in the request for the [`Version`] extractor.
#[derive(Clone)]
struct Negotiated(Result<Version, ApiError>);

/// Negotiates the request's version, answers with it (`OpenStack-API-Version`, the
/// legacy header if the service has one, and `Vary`), and leaves it for handlers.
pub async fn version_headers(State(api): State<&'static Api>, mut req: Request, next: Next) -> Response {
    let v = api.from_headers(req.headers());
    req.extensions_mut().insert(Negotiated(v.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = v {
        let headers = resp.headers_mut();
        if let Ok(val) = format!("{} {v}", api.service).parse() {
            headers.insert("openstack-api-version", val);
        }
        let mut vary = "OpenStack-API-Version".to_string();
        if let Some(legacy) = api.legacy_header {
            if let Ok(val) = v.to_string().parse() {
                headers.insert(legacy, val);
            }
            vary = format!("{vary}, {}", canonical(legacy));
        }
        if let Ok(val) = HeaderValue::from_str(&vary) {
            headers.insert("vary", val);
        }
    }
    resp
}

/// `x-openstack-nova-api-version` as `X-OpenStack-Nova-API-Version`.
fn canonical(header: &str) -> String {
    header
        .split('-')
        .map(|w| match w {
            "openstack" => "OpenStack".to_string(),
            "api" => "API".to_string(),
            w => {
                let mut c = w.chars();
                c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

impl<S: Send + Sync> FromRequestParts<S> for Version {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Negotiated>() {
            Some(Negotiated(v)) => v.clone(),
            None => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "This API negotiates no microversion.")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPUTE: Api = Api {
        service: "compute",
        min: Version(2, 1),
        max: Version(2, 96),
        legacy_header: Some("x-openstack-nova-api-version"),
    };

    #[test]
    fn negotiation() {
        assert_eq!(COMPUTE.negotiate(None, None).unwrap(), Version(2, 1));
        assert_eq!(COMPUTE.negotiate(Some("compute 2.61"), None).unwrap(), Version(2, 61));
        assert_eq!(COMPUTE.negotiate(Some("volume 3.5, compute 2.47"), None).unwrap(), Version(2, 47));
        assert_eq!(COMPUTE.negotiate(Some("volume 3.5"), None).unwrap(), Version(2, 1));
        assert_eq!(COMPUTE.negotiate(None, Some("2.61")).unwrap(), Version(2, 61));
        assert_eq!(COMPUTE.negotiate(Some("compute latest"), None).unwrap(), COMPUTE.max);
        assert_eq!(COMPUTE.negotiate(Some("compute 2.200"), None).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(COMPUTE.negotiate(Some("compute 3.0"), None).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(COMPUTE.negotiate(Some("compute x"), None).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(Version(2, 10) > Version(2, 9));
        assert!(Version(3, 27).at_least(27) && !Version(3, 26).at_least(27));
        assert_eq!(canonical("x-openstack-nova-api-version"), "X-OpenStack-Nova-API-Version");
    }
}
