//! Roles, implied roles, grants and the role-assignment report.

use super::policy::{self, require_admin};
use super::{write_error, Identity};
use crate::store::{new_id, Actor, Assignment, Project, Role, Target};
use std::collections::{BTreeSet, HashMap};
use stratus_common::auth::{AuthContext, NamedRef, Revocation};
use stratus_common::http::{ApiError, ApiResult};

/// Filters of `GET /v3/role_assignments`.
#[derive(Debug, Default, Clone)]
pub struct AssignmentQuery {
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub role_id: Option<String>,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub system: bool,
    pub effective: bool,
    pub include_names: bool,
    /// `scope.OS-INHERIT:inherited_to=projects`: only inherited assignments.
    pub inherited_only: bool,
}

/// One line of the role-assignment report.
#[derive(Debug, Clone)]
pub struct RoleAssignmentView {
    pub assignment: Assignment,
    /// Set when the line comes from a group membership (`effective`).
    pub via_group: Option<String>,
    pub names: Option<AssignmentNames>,
}

/// Names shown with `include_names`.
#[derive(Debug, Clone, Default)]
pub struct AssignmentNames {
    pub role_name: String,
    pub role_domain_id: Option<String>,
    pub actor_name: String,
    pub actor_domain: NamedRef,
    /// Name of the project or domain the role is held on.
    pub target_name: Option<String>,
    /// Domain of the project the role is held on.
    pub target_domain: Option<NamedRef>,
}

/// The projects an inherited assignment on `target` reaches: a domain's projects, or the
/// projects below a project (not the project itself).
pub(crate) fn projects_under(target: &Target, projects: &[Project]) -> Vec<String> {
    match target {
        Target::Domain(d) => projects.iter().filter(|p| &p.domain_id == d).map(|p| p.id.clone()).collect(),
        Target::Project(root) => {
            let parent: HashMap<&str, &str> =
                projects.iter().filter_map(|p| p.parent_id.as_deref().map(|q| (p.id.as_str(), q))).collect();
            projects
                .iter()
                .filter(|p| {
                    let mut at = p.id.as_str();
                    // Bounded: a parent chain never loops, but a bad row must not hang us.
                    for _ in 0..64 {
                        match parent.get(at) {
                            Some(&q) if q == root => return true,
                            Some(&q) => at = q,
                            None => return false,
                        }
                    }
                    false
                })
                .map(|p| p.id.clone())
                .collect()
        }
        Target::System => Vec::new(),
    }
}

impl Identity {
    pub async fn role_create(
        &self,
        ctx: &AuthContext,
        name: String,
        domain_id: Option<String>,
        description: String,
    ) -> ApiResult<Role> {
        require_admin(ctx, "create_role")?;
        super::validate_name("role", &name)?;
        let role = Role { id: new_id(), name, domain_id, description };
        self.store.role_create(&role).await.map_err(write_error("role"))?;
        self.emit("role", "created", &role.id).await;
        Ok(role)
    }

    pub async fn role_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Role> {
        if !ctx.is_reader() {
            return Err(policy::forbidden("get_role"));
        }
        self.store.role_fetch(id).await?.ok_or_else(|| ApiError::not_found("role", id))
    }

    pub async fn role_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Role>> {
        if !ctx.is_reader() {
            return Err(policy::forbidden("list_roles"));
        }
        Ok(self.store.role_list().await?)
    }

    pub async fn role_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> ApiResult<Role> {
        require_admin(ctx, "update_role")?;
        let mut role = self.store.role_fetch(id).await?.ok_or_else(|| ApiError::not_found("role", id))?;
        if let Some(n) = name {
            super::validate_name("role", &n)?;
            role.name = n;
        }
        if let Some(d) = description {
            role.description = d;
        }
        self.store.role_update(&role).await.map_err(write_error("role"))?;
        self.emit("role", "updated", id).await;
        Ok(role)
    }

    pub async fn role_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_role")?;
        self.store.role_fetch(id).await?.ok_or_else(|| ApiError::not_found("role", id))?;
        self.store.role_delete(id).await?;
        self.revoke(Revocation { role_id: Some(id.to_string()), ..Default::default() }).await?;
        self.emit("role", "deleted", id).await;
        Ok(())
    }

    pub async fn implied_role_add(&self, ctx: &AuthContext, prior: &str, implied: &str) -> ApiResult<(Role, Role)> {
        require_admin(ctx, "create_implied_role")?;
        let p = self.store.role_fetch(prior).await?.ok_or_else(|| ApiError::not_found("role", prior))?;
        let i = self.store.role_fetch(implied).await?.ok_or_else(|| ApiError::not_found("role", implied))?;
        if prior == implied || self.expand_roles(&[implied.to_string()]).await?.contains(prior) {
            return Err(ApiError::forbidden("This role inference would create a loop."));
        }
        self.store.implied_role_add(prior, implied).await?;
        Ok((p, i))
    }

    pub async fn implied_role_get(&self, ctx: &AuthContext, prior: &str, implied: &str) -> ApiResult<(Role, Role)> {
        if !ctx.is_reader() {
            return Err(policy::forbidden("get_implied_role"));
        }
        let rules = self.store.implied_role_rules().await?;
        if !rules.iter().any(|(p, i)| p == prior && i == implied) {
            return Err(ApiError::not_found("implied role", &format!("{prior} implies {implied}")));
        }
        let p = self.store.role_fetch(prior).await?.ok_or_else(|| ApiError::not_found("role", prior))?;
        let i = self.store.role_fetch(implied).await?.ok_or_else(|| ApiError::not_found("role", implied))?;
        Ok((p, i))
    }

    pub async fn implied_role_remove(&self, ctx: &AuthContext, prior: &str, implied: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_implied_role")?;
        if !self.store.implied_role_remove(prior, implied).await? {
            return Err(ApiError::not_found("implied role", &format!("{prior} implies {implied}")));
        }
        self.revoke(Revocation { role_id: Some(prior.to_string()), ..Default::default() }).await?;
        Ok(())
    }

    /// Every rule, grouped by prior role.
    pub async fn role_inferences(
        &self,
        ctx: &AuthContext,
        only_prior: Option<&str>,
    ) -> ApiResult<Vec<(Role, Vec<Role>)>> {
        if !ctx.is_reader() {
            return Err(policy::forbidden("list_role_inference_rules"));
        }
        let roles: HashMap<String, Role> =
            self.store.role_list().await?.into_iter().map(|r| (r.id.clone(), r)).collect();
        if let Some(p) = only_prior {
            if !roles.contains_key(p) {
                return Err(ApiError::not_found("role", p));
            }
        }
        let mut grouped: Vec<(Role, Vec<Role>)> = Vec::new();
        for (prior, implied) in self.store.implied_role_rules().await? {
            if only_prior.is_some_and(|p| p != prior) {
                continue;
            }
            let (Some(p), Some(i)) = (roles.get(&prior), roles.get(&implied)) else { continue };
            match grouped.iter_mut().find(|(r, _)| r.id == prior) {
                Some((_, list)) => list.push(i.clone()),
                None => grouped.push((p.clone(), vec![i.clone()])),
            }
        }
        if let Some(p) = only_prior {
            if grouped.is_empty() {
                grouped.push((roles[p].clone(), Vec::new()));
            }
        }
        Ok(grouped)
    }

    /// Role ids plus every role they imply, transitively.
    pub(crate) async fn expand_roles(&self, ids: &[String]) -> ApiResult<BTreeSet<String>> {
        let rules = self.store.implied_role_rules().await?;
        let mut out: BTreeSet<String> = ids.iter().cloned().collect();
        let mut frontier: Vec<String> = ids.to_vec();
        while let Some(r) = frontier.pop() {
            for (p, i) in &rules {
                if *p == r && out.insert(i.clone()) {
                    frontier.push(i.clone());
                }
            }
        }
        Ok(out)
    }

    /// The user and the groups they belong to.
    async fn actors_of(&self, user_id: &str) -> ApiResult<Vec<Actor>> {
        let mut actors = vec![Actor::User(user_id.to_string())];
        actors.extend(self.store.user_group_ids(user_id).await?.into_iter().map(Actor::Group));
        Ok(actors)
    }

    /// The targets whose inherited assignments reach a project: its domain and every
    /// project above it.
    async fn inheriting_targets(&self, project_id: &str) -> ApiResult<Vec<Target>> {
        let Some(p) = self.store.project_fetch(project_id).await? else { return Ok(Vec::new()) };
        let mut out = vec![Target::Domain(p.domain_id)];
        let mut parent = p.parent_id;
        for _ in 0..64 {
            let Some(id) = parent else { break };
            parent = self.store.project_fetch(&id).await?.and_then(|p| p.parent_id);
            out.push(Target::Project(id));
        }
        Ok(out)
    }

    /// Roles a user holds on a target, directly or through groups, inherited from the
    /// project's domain or ancestors, implied roles included.
    pub(crate) async fn effective_roles(&self, user_id: &str, target: &Target) -> ApiResult<Vec<Role>> {
        let actors = self.actors_of(user_id).await?;
        let all = self.store.assignment_list_for_actors(&actors).await?;
        let inheriting = match target {
            Target::Project(p) if all.iter().any(|a| a.inherited) => self.inheriting_targets(p).await?,
            _ => Vec::new(),
        };
        let direct: Vec<String> = all
            .into_iter()
            .filter(|a| if a.inherited { inheriting.contains(&a.target) } else { &a.target == target })
            .map(|a| a.role_id)
            .collect();
        if direct.is_empty() {
            return Ok(Vec::new());
        }
        let mut roles = Vec::new();
        for id in self.expand_roles(&direct).await? {
            // A domain-specific role only stands for the global roles it implies.
            if let Some(r) = self.store.role_fetch(&id).await?.filter(|r| r.domain_id.is_none()) {
                roles.push(r);
            }
        }
        Ok(roles)
    }

    /// Every target the user holds some role on (inherited ones: the projects they reach).
    pub(crate) async fn user_targets(&self, user_id: &str) -> ApiResult<BTreeSet<Target>> {
        let actors = self.actors_of(user_id).await?;
        let all = self.store.assignment_list_for_actors(&actors).await?;
        let mut out: BTreeSet<Target> = all.iter().filter(|a| !a.inherited).map(|a| a.target.clone()).collect();
        if all.iter().any(|a| a.inherited) {
            let projects = self.store.project_list(None, None).await?;
            for a in all.iter().filter(|a| a.inherited) {
                out.extend(projects_under(&a.target, &projects).into_iter().map(Target::Project));
            }
        }
        Ok(out)
    }

    /// Enabled projects the user holds a role on.
    pub(crate) async fn user_projects(&self, user_id: &str) -> ApiResult<Vec<Project>> {
        let ids: Vec<String> = self
            .user_targets(user_id)
            .await?
            .into_iter()
            .filter_map(|t| match t {
                Target::Project(id) => Some(id),
                _ => None,
            })
            .collect();
        Ok(self.store.project_list_by_ids(&ids).await?.into_iter().filter(|p| p.enabled).collect())
    }

    /// Checks that the actor, target and role of a grant exist.
    async fn check_grant(&self, a: &Assignment) -> ApiResult<()> {
        match &a.actor {
            Actor::User(id) => {
                self.store.user_fetch(id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
            }
            Actor::Group(id) => {
                self.store.group_fetch(id).await?.ok_or_else(|| ApiError::not_found("group", id))?;
            }
        }
        match &a.target {
            Target::Project(id) => {
                self.store.project_fetch(id).await?.ok_or_else(|| ApiError::not_found("project", id))?;
            }
            Target::Domain(id) => {
                self.store.domain_fetch(id).await?.ok_or_else(|| ApiError::not_found("domain", id))?;
            }
            Target::System => {}
        }
        self.store.role_fetch(&a.role_id).await?.ok_or_else(|| ApiError::not_found("role", &a.role_id))?;
        Ok(())
    }

    /// `PUT /v3/{projects|domains|system}/.../{users|groups}/.../roles/{role}`.
    pub async fn grant(&self, ctx: &AuthContext, a: Assignment) -> ApiResult<()> {
        require_admin(ctx, "create_grant")?;
        self.check_grant(&a).await?;
        self.store.assignment_grant(&a).await?;
        self.emit("role_assignment", "created", &a.role_id).await;
        Ok(())
    }

    /// `HEAD`/`GET` of one grant: 204 when it exists, 404 otherwise.
    pub async fn grant_check(&self, ctx: &AuthContext, a: &Assignment) -> ApiResult<()> {
        require_admin(ctx, "check_grant")?;
        self.check_grant(a).await?;
        if self.store.assignment_exists(a).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("grant", &a.role_id))
        }
    }

    /// Removes a grant and revokes the tokens it gave.
    pub async fn revoke_grant(&self, ctx: &AuthContext, a: Assignment) -> ApiResult<()> {
        require_admin(ctx, "revoke_grant")?;
        self.check_grant(&a).await?;
        if !self.store.assignment_revoke(&a).await? {
            return Err(ApiError::not_found("grant", &a.role_id));
        }
        let users = match &a.actor {
            Actor::User(id) => vec![id.clone()],
            Actor::Group(id) => self.store.group_user_ids(id).await?,
        };
        for user in users {
            let mut r = Revocation { user_id: Some(user), ..Default::default() };
            // An inherited role was held on other projects: all the user's tokens go.
            if let (Target::Project(p), false) = (&a.target, a.inherited) {
                r.project_id = Some(p.clone());
            }
            self.revoke(r).await?;
        }
        self.emit("role_assignment", "deleted", &a.role_id).await;
        Ok(())
    }

    /// Roles granted directly to one actor on one target (`GET .../roles`), or those
    /// granted for its projects to inherit (`.../roles/inherited_to_projects`).
    pub async fn grant_list(
        &self,
        ctx: &AuthContext,
        actor: Actor,
        target: Target,
        inherited: bool,
    ) -> ApiResult<Vec<Role>> {
        let own = matches!(&actor, Actor::User(u) if u == ctx.user_id());
        if !(ctx.is_admin() || own) {
            return Err(policy::forbidden("list_grants"));
        }
        let mut roles = Vec::new();
        for a in self.store.assignment_list_for_actors(&[actor]).await? {
            if a.target == target && a.inherited == inherited {
                if let Some(r) = self.store.role_fetch(&a.role_id).await? {
                    roles.push(r);
                }
            }
        }
        Ok(roles)
    }

    /// `GET /v3/role_assignments`. Admins see everything; others only their own.
    pub async fn role_assignment_list(
        &self,
        ctx: &AuthContext,
        q: AssignmentQuery,
    ) -> ApiResult<Vec<RoleAssignmentView>> {
        let own = q.user_id.as_deref() == Some(ctx.user_id());
        let own_project = q.project_id.is_some() && q.project_id.as_deref() == ctx.project_id() && ctx.is_reader();
        if !(ctx.is_admin() || own || own_project) {
            return Err(policy::forbidden("list_role_assignments"));
        }
        let mut all = self.store.assignment_list_all().await?;
        if q.inherited_only {
            all.retain(|a| a.inherited);
        }
        let mut lines: Vec<RoleAssignmentView> = Vec::new();
        if q.effective {
            // Inherited assignments become one per project they reach.
            let projects =
                if all.iter().any(|a| a.inherited) { self.store.project_list(None, None).await? } else { Vec::new() };
            let all: Vec<Assignment> = all
                .into_iter()
                .flat_map(|a| {
                    if a.inherited {
                        projects_under(&a.target, &projects)
                            .into_iter()
                            .map(|p| Assignment { target: Target::Project(p), inherited: false, ..a.clone() })
                            .collect()
                    } else {
                        vec![a]
                    }
                })
                .collect();
            // Group assignments become one line per member; implied roles are added.
            let rules = self.store.implied_role_rules().await?;
            let mut seen = BTreeSet::new();
            for a in all {
                let users: Vec<(String, Option<String>)> = match &a.actor {
                    Actor::User(u) => vec![(u.clone(), None)],
                    Actor::Group(g) => {
                        self.store.group_user_ids(g).await?.into_iter().map(|u| (u, Some(g.clone()))).collect()
                    }
                };
                let mut roles = vec![a.role_id.clone()];
                let mut i = 0;
                while i < roles.len() {
                    for (p, imp) in &rules {
                        if *p == roles[i] && !roles.contains(imp) {
                            roles.push(imp.clone());
                        }
                    }
                    i += 1;
                }
                for (user, via) in users {
                    for role in &roles {
                        let line = Assignment {
                            actor: Actor::User(user.clone()),
                            target: a.target.clone(),
                            role_id: role.clone(),
                            inherited: false,
                        };
                        if seen.insert(line.clone()) {
                            lines.push(RoleAssignmentView { assignment: line, via_group: via.clone(), names: None });
                        }
                    }
                }
            }
            // Domain-specific roles never reach a token: they only stand for the global
            // roles they imply.
            let domain_roles: BTreeSet<String> =
                self.store.role_list().await?.into_iter().filter(|r| r.domain_id.is_some()).map(|r| r.id).collect();
            lines.retain(|l| !domain_roles.contains(&l.assignment.role_id));
        } else {
            lines =
                all.into_iter().map(|a| RoleAssignmentView { assignment: a, via_group: None, names: None }).collect();
        }
        lines.retain(|l| {
            let a = &l.assignment;
            q.user_id.as_ref().is_none_or(|u| a.actor == Actor::User(u.clone()))
                && q.group_id
                    .as_ref()
                    .is_none_or(|g| a.actor == Actor::Group(g.clone()) || l.via_group.as_ref() == Some(g))
                && q.role_id.as_ref().is_none_or(|r| &a.role_id == r)
                && q.project_id.as_ref().is_none_or(|p| a.target == Target::Project(p.clone()))
                && q.domain_id.as_ref().is_none_or(|d| a.target == Target::Domain(d.clone()))
                && (!q.system || a.target == Target::System)
        });
        if q.include_names {
            for l in &mut lines {
                l.names = Some(self.assignment_names(&l.assignment).await?);
            }
        }
        Ok(lines)
    }

    async fn assignment_names(&self, a: &Assignment) -> ApiResult<AssignmentNames> {
        let mut n = AssignmentNames::default();
        if let Some(r) = self.store.role_fetch(&a.role_id).await? {
            n.role_name = r.name;
            n.role_domain_id = r.domain_id;
        }
        let (actor_name, actor_domain) = match &a.actor {
            Actor::User(id) => self.store.user_fetch(id).await?.map(|u| (u.name, u.domain_id)).unwrap_or_default(),
            Actor::Group(id) => self.store.group_fetch(id).await?.map(|g| (g.name, g.domain_id)).unwrap_or_default(),
        };
        let domain_name = self.store.domain_fetch(&actor_domain).await?.map(|d| d.name).unwrap_or_default();
        n.actor_name = actor_name;
        n.actor_domain = NamedRef { id: actor_domain, name: domain_name };
        match &a.target {
            Target::Project(id) => {
                if let Some(p) = self.store.project_fetch(id).await? {
                    let dn = self.store.domain_fetch(&p.domain_id).await?.map(|d| d.name).unwrap_or_default();
                    n.target_name = Some(p.name);
                    n.target_domain = Some(NamedRef { id: p.domain_id, name: dn });
                }
            }
            Target::Domain(id) => n.target_name = self.store.domain_fetch(id).await?.map(|d| d.name),
            Target::System => {}
        }
        Ok(n)
    }
}
