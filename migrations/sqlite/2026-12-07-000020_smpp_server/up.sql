-- SMPP server accounts: a client application (ESME) binds with system_id and password
-- (PBKDF2 hash) and submits as its tenant.
CREATE TABLE smpp_accounts (
    system_id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    password_hash TEXT NOT NULL,
    -- JSON list of CIDRs the account may bind from; empty: anywhere.
    networks TEXT NOT NULL DEFAULT '[]',
    max_binds INTEGER NOT NULL,
    submit_window INTEGER NOT NULL,
    -- submit_sm per second over all binds; 0: only the tenant's rate limit.
    throughput INTEGER NOT NULL,
    -- Also report RCS/app reads as a second deliver_sm.
    read_receipts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX smpp_accounts_tenant ON smpp_accounts (tenant_id);
-- What waits for a receiver bind of an account: receipts and inbound messages as
-- deliver_sm, kept until the client acknowledges them. dedupe makes writing one twice
-- (the event log read again after a crash) a no-op.
CREATE TABLE smpp_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    system_id TEXT NOT NULL,
    dedupe TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX smpp_outbox_account ON smpp_outbox (system_id, locked_until, id);
-- Parts of a concatenated submit, until the last one arrives (each answered once stored).
CREATE TABLE smpp_parts (
    system_id TEXT NOT NULL,
    source_addr TEXT NOT NULL,
    dest_addr TEXT NOT NULL,
    ref_num INTEGER NOT NULL,
    total INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    data_coding INTEGER NOT NULL,
    body TEXT NOT NULL,
    registered_delivery INTEGER NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (system_id, source_addr, dest_addr, ref_num, total, seq)
);
-- Messages submitted over SMPP: the account, its registered_delivery and source.
ALTER TABLE messages ADD COLUMN smpp TEXT;
