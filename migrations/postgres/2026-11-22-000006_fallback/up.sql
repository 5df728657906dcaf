-- Channel selection and fallback: the plan recorded per message (each channel with the
-- reason it was kept or skipped) and its fallback policy; tenant defaults for both.
ALTER TABLE messages ADD COLUMN plan TEXT;
ALTER TABLE messages ADD COLUMN fallback TEXT;
ALTER TABLE tenants ADD COLUMN defaults TEXT;
-- The secret that signs deliveries to per-message callback URLs.
ALTER TABLE tenants ADD COLUMN callback_secret TEXT;

-- Durable fallback timers: one per attempt waiting for a positive receipt. A worker
-- leases due rows (locked_until) so that each fires once, in any number of processes.
CREATE TABLE fallback_timers (
    attempt_id TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    tries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX fallback_timers_due ON fallback_timers (due_at);

-- Customer webhooks: endpoints with their signing secret, and one delivery row per
-- (event, destination), written in the transaction that records the event.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    endpoint_id TEXT,
    url TEXT NOT NULL,
    event_type TEXT NOT NULL,
    message_id TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries (tenant_id, status, id);
