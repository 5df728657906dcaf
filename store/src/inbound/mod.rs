//! What comes in from providers: inbound (MO) parts reassembled into messages, opt-outs,
//! markers of provider events, typing indicators and RBM agents' launch states.

mod events;
mod opt_out;
mod read;
mod receive;

use async_trait::async_trait;
use hermod_core::TenantId;
use hermod_core::inbound::{InboundMessage, InboundPart, OptOut};
use hermod_core::ports::{Inbound, PortResult};

use crate::SqlStore;

#[async_trait]
impl Inbound for SqlStore {
    async fn receive_inbound(&self, part: &InboundPart) -> PortResult<Option<InboundMessage>> {
        receive::receive(&self.db, &self.vault, part).await
    }

    async fn stale_inbound_parts(&self, before: i64) -> PortResult<Vec<Vec<InboundPart>>> {
        receive::stale_parts(&self.db, before).await
    }

    async fn list_inbound(
        &self,
        tenant: &TenantId,
        cursor: Option<&str>,
        limit: i64,
    ) -> PortResult<Vec<InboundMessage>> {
        read::list(&self.db, &self.vault, Some(tenant), cursor, limit).await
    }

    async fn get_inbound(&self, tenant: &TenantId, id: &str) -> PortResult<Option<InboundMessage>> {
        read::get(&self.db, &self.vault, tenant, id).await
    }

    async fn list_opt_outs(
        &self,
        tenant: &TenantId,
        recipient: Option<&str>,
    ) -> PortResult<Vec<OptOut>> {
        opt_out::list_opt_outs(&self.db, &self.vault, tenant, recipient).await
    }

    async fn add_opt_out(
        &self,
        tenant: &TenantId,
        recipient: &str,
        sender: &str,
        source: &str,
    ) -> PortResult<bool> {
        opt_out::add_opt_out(&self.db, &self.vault, tenant, recipient, sender, source).await
    }

    async fn remove_opt_out(
        &self,
        tenant: &TenantId,
        recipient: &str,
        sender: Option<&str>,
    ) -> PortResult<usize> {
        opt_out::remove_opt_out(&self.db, &self.vault, tenant, recipient, sender).await
    }

    async fn record_typing(
        &self,
        tenant: &TenantId,
        connector: &str,
        from: &str,
        at: i64,
        marker: &hermod_core::model::ProviderEvent,
    ) -> PortResult<()> {
        events::record_typing(&self.db, &self.vault, tenant, connector, from, at, marker).await
    }

    async fn first_seen_event(
        &self,
        event: &hermod_core::model::ProviderEvent,
    ) -> PortResult<bool> {
        events::first_seen_event(&self.db, event).await
    }

    async fn seen_event(&self, event: &hermod_core::model::ProviderEvent) -> PortResult<bool> {
        events::seen_event(&self.db, event).await
    }

    async fn record_launch(&self, launch: &hermod_core::model::AgentLaunch) -> PortResult<()> {
        events::record_launch(&self.db, launch).await
    }

    async fn launch_states(&self) -> PortResult<Vec<hermod_core::model::AgentLaunch>> {
        events::launch_states(&self.db).await
    }
    async fn unattributed_inbound(
        &self,
        limit: i64,
        cursor: Option<&str>,
    ) -> PortResult<Vec<InboundMessage>> {
        read::list(&self.db, &self.vault, None, cursor, limit).await
    }
}
