-- Scheduling (`send_at`) and why a message ended without a send (`reason`).
ALTER TABLE messages ADD COLUMN send_at BIGINT;
ALTER TABLE messages ADD COLUMN reason TEXT;
-- Inbound messages find their tenant through the last message sent to their sender.
CREATE INDEX messages_to ON messages (to_number, id);

-- Inbound (MO) messages; `tenant_id` is NULL when no tenant could be found.
CREATE TABLE inbound_messages (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT,
    from_number TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    body TEXT NOT NULL,
    parts INTEGER NOT NULL,
    connector TEXT NOT NULL,
    keyword TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX inbound_tenant ON inbound_messages (tenant_id, id);

-- Parts of concatenated inbound messages until the last one arrives.
CREATE TABLE inbound_parts (
    from_number TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    ref_num INTEGER NOT NULL,
    total INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    connector TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (from_number, to_addr, ref_num, total, seq)
);

-- Recipients who opted out of a tenant's sender (`*` = every sender of the tenant).
CREATE TABLE opt_outs (
    tenant_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, recipient, sender)
);
