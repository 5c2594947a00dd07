//! Reservable floating IPs (admin only, as Blazar's): addresses of an external network,
//! outside its allocation pools, that `virtual:floatingip` reservations hand out.

use super::{bad, require_admin, AppResult, Error, ReservationService};
use crate::store::FloatingIp;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::{is_unique_violation, now_text};

impl ReservationService {
    pub async fn floatingip_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> AppResult<FloatingIp> {
        require_admin(ctx, "floatingips:post")?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let network = text("floating_network_id").ok_or_else(|| bad("floating_network_id is required."))?;
        let address = text("floating_ip_address").ok_or_else(|| bad("floating_ip_address is required."))?;
        let subnet = self
            .network
            .check_address(network, address)
            .await
            .map_err(|e| Error::Unavailable(format!("The network service could not be asked: {e:#}")))?
            .map_err(Error::BadRequest)?;
        let f = FloatingIp {
            id: uuid::Uuid::new_v4().to_string(),
            floating_network_id: network.to_string(),
            floating_ip_address: address.to_string(),
            subnet_id: subnet,
            reservable: true,
            created_at: String::new(),
            updated_at: None,
        };
        match self.store.floatingip_insert(&f).await {
            Ok(made) => Ok(made),
            Err(e) if is_unique_violation(&e) => {
                Err(Error::Conflict(format!("{address} is already a reservable floating IP of network {network}.")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn floatingip_list(&self, ctx: &AuthContext) -> AppResult<Vec<FloatingIp>> {
        require_admin(ctx, "floatingips:get")?;
        Ok(self.store.floatingip_list().await?)
    }

    pub async fn floatingip_get(&self, ctx: &AuthContext, id: &str) -> AppResult<FloatingIp> {
        require_admin(ctx, "floatingips:get")?;
        self.store
            .floatingip_get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Floating IP {id} could not be found.")))
    }

    pub async fn floatingip_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        let f = self.floatingip_get(ctx, id).await?;
        if self.store.floatingip_delete(&f.id, &now_text()).await? {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "Floating IP {} is reserved by a current or future lease.",
                f.floating_ip_address
            )))
        }
    }
}
