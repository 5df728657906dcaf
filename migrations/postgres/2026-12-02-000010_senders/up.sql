-- Senders (numbers, alphanumeric ids, RCS agent names) assigned to tenants by the
-- operator. `sender` is the lookup key: trimmed, without '+', in lower case.
CREATE TABLE senders (
    sender TEXT PRIMARY KEY NOT NULL,
    display TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE INDEX senders_tenant ON senders (tenant_id);
