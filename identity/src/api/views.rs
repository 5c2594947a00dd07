//! How identity's resources look on the wire, in Keystone's shapes.

use crate::app::credentials::Ec2Credential;
use crate::app::RoleAssignmentView;
use crate::store::{
    Actor, AppCred, Credential, Domain, Endpoint, Group, Limit, Project, Region, RegisteredLimit, Role, Service,
    Target, User,
};
use serde_json::{json, Map, Value};

fn with_extra(mut v: Value, extra: &Map<String, Value>) -> Value {
    if let Value::Object(o) = &mut v {
        for (k, val) in extra {
            o.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    v
}

fn links(base: &str, path: &str) -> Value {
    json!({"self": format!("{base}/v3/{path}")})
}

pub fn domain(base: &str, d: &Domain) -> Value {
    with_extra(
        json!({"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled,
               "tags": [], "options": {}, "links": links(base, &format!("domains/{}", d.id))}),
        &d.extra,
    )
}

/// A project as listed: serialised straight from the row (the list is read often, and
/// large); the same document as [`project`].
#[derive(serde::Serialize)]
pub struct ProjectView<'a> {
    id: &'a str,
    name: &'a str,
    domain_id: Option<&'a str>,
    description: &'a str,
    enabled: bool,
    parent_id: Option<&'a str>,
    is_domain: bool,
    tags: &'a [String],
    options: Map<String, Value>,
    links: SelfLink,
    #[serde(flatten)]
    extra: Extra<'a>,
}

impl<'a> ProjectView<'a> {
    pub fn new(base: &str, p: &'a Project) -> Self {
        Self {
            id: &p.id,
            name: &p.name,
            domain_id: (!p.is_domain).then_some(p.domain_id.as_str()),
            description: &p.description,
            enabled: p.enabled,
            parent_id: if p.is_domain { None } else { Some(p.parent_id.as_deref().unwrap_or(&p.domain_id)) },
            is_domain: p.is_domain,
            tags: &p.tags,
            options: Map::new(),
            links: SelfLink { me: format!("{base}/v3/projects/{}", p.id) },
            extra: Extra { map: &p.extra, fixed: PROJECT_KEYS },
        }
    }

    pub fn id(&self) -> &str {
        self.id
    }
}

const PROJECT_KEYS: &[&str] =
    &["id", "name", "domain_id", "description", "enabled", "parent_id", "is_domain", "tags", "options", "links"];

#[derive(serde::Serialize)]
struct SelfLink {
    #[serde(rename = "self")]
    me: String,
}

/// A resource's extra attributes, beside its fixed ones (which win, as in [`with_extra`]).
struct Extra<'a> {
    map: &'a Map<String, Value>,
    fixed: &'static [&'static str],
}

impl serde::Serialize for Extra<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.map.iter().filter(|(k, _)| !self.fixed.contains(&k.as_str())) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

pub fn project(base: &str, p: &Project) -> Value {
    with_extra(
        json!({"id": p.id, "name": p.name, "domain_id": (!p.is_domain).then_some(&p.domain_id),
               "description": p.description, "enabled": p.enabled,
               "parent_id": if p.is_domain { None } else { Some(p.parent_id.clone().unwrap_or_else(|| p.domain_id.clone())) },
               "is_domain": p.is_domain, "tags": p.tags, "options": {},
               "links": links(base, &format!("projects/{}", p.id))}),
        &p.extra,
    )
}

pub fn user(base: &str, u: &User) -> Value {
    let mut v = json!({"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
                       "password_expires_at": null, "options": u.extra.get("options").cloned().unwrap_or(json!({})),
                       "links": links(base, &format!("users/{}", u.id))});
    if let Some(p) = &u.default_project_id {
        v["default_project_id"] = json!(p);
    }
    if !u.description.is_empty() {
        v["description"] = json!(u.description);
    }
    with_extra(v, &u.extra)
}

pub fn group(base: &str, g: &Group) -> Value {
    json!({"id": g.id, "name": g.name, "domain_id": g.domain_id, "description": g.description,
           "links": links(base, &format!("groups/{}", g.id))})
}

pub fn role(base: &str, r: &Role) -> Value {
    json!({"id": r.id, "name": r.name, "domain_id": r.domain_id, "description": r.description,
           "options": {}, "links": links(base, &format!("roles/{}", r.id))})
}

pub fn role_ref(base: &str, r: &Role) -> Value {
    json!({"id": r.id, "name": r.name, "links": links(base, &format!("roles/{}", r.id))})
}

pub fn region(base: &str, r: &Region) -> Value {
    json!({"id": r.id, "description": r.description, "parent_region_id": r.parent_region_id,
           "links": links(base, &format!("regions/{}", r.id))})
}

pub fn service(base: &str, s: &Service) -> Value {
    json!({"id": s.id, "type": s.service_type, "name": s.name, "description": s.description,
           "enabled": s.enabled, "links": links(base, &format!("services/{}", s.id))})
}

pub fn endpoint(base: &str, e: &Endpoint) -> Value {
    json!({"id": e.id, "interface": e.interface, "url": e.url, "region": e.region_id, "region_id": e.region_id,
           "service_id": e.service_id, "enabled": e.enabled, "links": links(base, &format!("endpoints/{}", e.id))})
}

pub fn app_cred(base: &str, c: &AppCred, secret: Option<&str>) -> Value {
    let mut v = json!({
        "id": c.id, "name": c.name, "description": c.description, "user_id": c.user_id,
        // As Keystone shows it: ISO 8601 with microseconds, no zone (it is UTC).
        "project_id": c.project_id, "expires_at": c.expires_at.as_deref().map(|t| t.trim_end_matches('Z')),
        "unrestricted": c.unrestricted,
        "system": null, "access_rules": [],
        "roles": c.roles.iter().map(|r| json!({"id": r.id, "name": r.name, "domain_id": null})).collect::<Vec<_>>(),
        "links": links(base, &format!("users/{}/application_credentials/{}", c.user_id, c.id)),
    });
    if let Some(s) = secret {
        v["secret"] = json!(s);
    }
    v
}

pub fn credential(base: &str, c: &Credential) -> Value {
    json!({
        "id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.kind, "blob": c.blob,
        "links": links(base, &format!("credentials/{}", c.id)),
    })
}

pub fn endpoint_group(base: &str, g: &crate::store::EndpointGroup) -> Value {
    json!({"id": g.id, "name": g.name, "description": g.description, "filters": g.filters,
           "links": links(base, &format!("OS-EP-FILTER/endpoint_groups/{}", g.id))})
}

pub fn policy(base: &str, p: &crate::store::PolicyDocument) -> Value {
    json!({"id": p.id, "type": p.kind, "blob": p.blob, "links": links(base, &format!("policies/{}", p.id))})
}

pub fn ec2_credential(base: &str, e: &Ec2Credential) -> Value {
    json!({
        "user_id": e.user_id, "tenant_id": e.project_id, "access": e.access, "secret": e.secret,
        "trust_id": e.trust_id,
        "links": links(base, &format!("users/{}/credentials/OS-EC2/{}", e.user_id, e.access)),
    })
}

pub fn registered_limit(base: &str, l: &RegisteredLimit) -> Value {
    json!({"id": l.id, "service_id": l.service_id, "region_id": l.region_id, "resource_name": l.resource_name,
           "default_limit": l.default_limit, "description": l.description,
           "links": links(base, &format!("registered_limits/{}", l.id))})
}

pub fn limit(base: &str, l: &Limit) -> Value {
    json!({"id": l.id, "project_id": l.project_id, "domain_id": null, "service_id": l.service_id,
           "region_id": l.region_id, "resource_name": l.resource_name, "resource_limit": l.resource_limit,
           "description": l.description, "links": links(base, &format!("limits/{}", l.id))})
}

pub fn role_assignment(base: &str, v: &RoleAssignmentView) -> Value {
    let a = &v.assignment;
    let names = v.names.as_ref();
    let mut role = json!({"id": a.role_id});
    let mut actor = match &a.actor {
        Actor::User(id) | Actor::Group(id) => json!({"id": id}),
    };
    let mut scope = match &a.target {
        Target::Project(id) => json!({"project": {"id": id}}),
        Target::Domain(id) => json!({"domain": {"id": id}}),
        Target::System => json!({"system": {"all": true}}),
    };
    if let Some(n) = names {
        role["name"] = json!(n.role_name);
        if let Some(d) = &n.role_domain_id {
            role["domain"] = json!({"id": d});
        }
        actor["name"] = json!(n.actor_name);
        actor["domain"] = json!({"id": n.actor_domain.id, "name": n.actor_domain.name});
        if let Some(tname) = &n.target_name {
            match &a.target {
                Target::Project(_) => {
                    scope["project"]["name"] = json!(tname);
                    if let Some(d) = &n.target_domain {
                        scope["project"]["domain"] = json!({"id": d.id, "name": d.name});
                    }
                }
                Target::Domain(_) => scope["domain"]["name"] = json!(tname),
                Target::System => {}
            }
        }
    }
    let (actor_key, actor_path) = match &a.actor {
        Actor::User(id) => ("user", format!("users/{id}")),
        Actor::Group(id) => ("group", format!("groups/{id}")),
    };
    let target_path = match &a.target {
        Target::Project(id) => format!("projects/{id}"),
        Target::Domain(id) => format!("domains/{id}"),
        Target::System => "system".to_string(),
    };
    let mut links = json!({"assignment": format!("{base}/v3/{target_path}/{actor_path}/roles/{}", a.role_id)});
    if a.inherited {
        scope["OS-INHERIT:inherited_to"] = json!("projects");
        links["assignment"] =
            json!(format!("{base}/v3/OS-INHERIT/{target_path}/{actor_path}/roles/{}/inherited_to_projects", a.role_id));
    }
    if let Some(g) = &v.via_group {
        if let Actor::User(u) = &a.actor {
            links["membership"] = json!(format!("{base}/v3/groups/{g}/users/{u}"));
            links["assignment"] = json!(format!("{base}/v3/{target_path}/groups/{g}/roles/{}", a.role_id));
        }
    }
    let mut out = json!({"role": role, "scope": scope, "links": links});
    out[actor_key] = actor;
    out
}

pub fn consumer(base: &str, c: &crate::store::Consumer, with_secret: bool) -> Value {
    let mut v = json!({"id": c.id, "description": c.description,
                       "links": links(base, &format!("OS-OAUTH1/consumers/{}", c.id))});
    if with_secret {
        v["secret"] = json!(c.secret);
    }
    v
}

pub fn access_token(base: &str, t: &crate::store::AccessToken) -> Value {
    let path = format!("users/{}/OS-OAUTH1/access_tokens/{}", t.authorizing_user_id, t.id);
    json!({
        "id": t.id, "consumer_id": t.consumer_id, "project_id": t.project_id,
        "authorizing_user_id": t.authorizing_user_id,
        "expires_at": t.expires_at,
        "links": {"self": format!("{base}/v3/{path}"), "roles": format!("{base}/v3/{path}/roles")},
    })
}

#[cfg(test)]
mod typed_view_tests {
    use super::*;

    #[test]
    fn a_listed_project_is_the_same_document_as_a_shown_one() {
        for (parent, extra) in [
            (None, json!({})),
            (Some("p0"), json!({"colour": "blue", "name": "not the name", "nested": {"a": [1, 2]}})),
        ] {
            let p = Project {
                id: "p1".into(),
                name: "one".into(),
                domain_id: "default".into(),
                parent_id: parent.map(str::to_string),
                description: "d".into(),
                enabled: true,
                tags: vec!["t".into()],
                extra: extra.as_object().unwrap().clone(),
                is_domain: false,
            };
            assert_eq!(serde_json::to_value(ProjectView::new("http://h", &p)).unwrap(), project("http://h", &p));
        }
    }
}
