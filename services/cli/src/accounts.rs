//! Making projects and users (the admin's): a user can be given a role on a project in
//! the same command, as `openstack user create` + `role add` would.

use crate::create::{id, post};
use crate::{find, kinds, output, usage, Failure, Format, Verb};
use clap::Subcommand;
use serde_json::json;
use stratus_client::session::Method;
use stratus_client::Session;

#[derive(Subcommand)]
pub enum ProjectVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a project (admin)
    #[command(after_help = "Example:\n  stratus project create lab-3 --description \"course lab, spring\"")]
    Create {
        /// Its name (unique in its domain)
        name: String,
        /// What it is for
        #[arg(long)]
        description: Option<String>,
        /// Its domain, by ID
        #[arg(long, default_value = "default")]
        domain: String,
    },
}

#[derive(Subcommand)]
pub enum UserVerb {
    #[command(flatten)]
    Common(Verb),
    /// Create a user (admin), with a role on a project if asked
    #[command(
        after_help = "Example:\n  stratus user create alice --password 'a long passphrase' --project lab-3 --role member"
    )]
    Create {
        /// Their name (unique in their domain)
        name: String,
        /// Their password
        #[arg(long)]
        password: String,
        /// Their e-mail address
        #[arg(long)]
        email: Option<String>,
        /// Their default project, by name or ID; with --role, the project they get it on
        #[arg(long)]
        project: Option<String>,
        /// A role to give them on --project (e.g. member, reader)
        #[arg(long, requires = "project")]
        role: Option<String>,
        /// Their domain, by ID
        #[arg(long, default_value = "default")]
        domain: String,
    },
}

pub async fn project(s: &Session, verb: ProjectVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let ProjectVerb::Create { name, description, domain } = verb else { return Ok(()) };
    if name.trim().is_empty() {
        return Err(usage("a project needs a name".into()));
    }
    let body = json!({"project": {"name": name, "description": description.unwrap_or_default(), "domain_id": domain}});
    let made = post(s, "identity", "/projects", body).await?;
    output::record(&made["project"], format, columns).map_err(usage)
}

pub async fn user(s: &Session, verb: UserVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let UserVerb::Create { name, password, email, project, role, domain } = verb else { return Ok(()) };
    if name.trim().is_empty() {
        return Err(usage("a user needs a name".into()));
    }
    // Everything named is looked up before anything is made.
    let project = match &project {
        Some(p) => Some(id(&find(&kinds::PROJECT, s, p).await?)),
        None => None,
    };
    let role = match &role {
        Some(r) => Some(role_id(s, r).await?),
        None => None,
    };
    let mut user = json!({"name": name, "password": password, "domain_id": domain, "enabled": true});
    if let Some(e) = email {
        user["email"] = json!(e);
    }
    if let Some(p) = &project {
        user["default_project_id"] = json!(p);
    }
    let made = post(s, "identity", "/users", json!({ "user": user })).await?;
    let made = made["user"].clone();
    if let (Some(p), Some(r)) = (project, role) {
        let path = format!("/projects/{p}/users/{}/roles/{r}", id(&made));
        s.call(Method::PUT, "identity", &path, None, &[]).await?;
    }
    output::record(&made, format, columns).map_err(usage)
}

/// A role's ID, by name or ID.
async fn role_id(s: &Session, role: &str) -> Result<String, Failure> {
    let roles = s.call(Method::GET, "identity", "/roles", None, &[]).await?;
    let found = roles["roles"].as_array().into_iter().flatten().find(|r| r["id"] == role || r["name"] == role);
    found.map(id).ok_or_else(|| Failure { code: 4, message: format!("no role with the name or ID {role:?}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_needs_a_project() {
        #[derive(clap::Parser)]
        struct T {
            #[command(subcommand)]
            v: UserVerb,
        }
        assert!(
            <T as clap::Parser>::try_parse_from(["t", "create", "u", "--password", "p", "--role", "member"]).is_err()
        );
        assert!(<T as clap::Parser>::try_parse_from([
            "t",
            "create",
            "u",
            "--password",
            "p",
            "--project",
            "x",
            "--role",
            "member"
        ])
        .is_ok());
    }
}
