CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE messages (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    to_number TEXT NOT NULL,
    from_addr TEXT,
    body TEXT NOT NULL,
    channels TEXT NOT NULL,
    ttl_secs BIGINT,
    metadata TEXT,
    callback_url TEXT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX messages_tenant_id ON messages (tenant_id, id);
CREATE INDEX messages_tenant_status ON messages (tenant_id, status, id);
CREATE INDEX messages_tenant_to ON messages (tenant_id, to_number, id);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages(id),
    attempt_no INTEGER NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    user_ref INTEGER NOT NULL,
    raw_status TEXT,
    error_code TEXT,
    error_permanent BOOLEAN,
    parts INTEGER NOT NULL,
    sending_since BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (message_id, attempt_no)
);

CREATE TABLE attempt_parts (
    provider_id TEXT PRIMARY KEY NOT NULL,
    attempt_id TEXT NOT NULL REFERENCES attempts(id),
    part_no INTEGER NOT NULL,
    status TEXT NOT NULL,
    raw_status TEXT,
    error_code TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX attempt_parts_attempt ON attempt_parts (attempt_id);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt_no INTEGER,
    channel TEXT,
    detail TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX events_message ON events (message_id, seq);

-- Append-only: the timeline is evidence, later chained into the audit log.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE idempotency_keys (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Receipts whose provider id is not (yet) known: the submit response is still in
-- flight, or was lost in a crash (then user_ref + recipient identify the attempt).
CREATE TABLE orphan_receipts (
    provider_id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    raw_status TEXT NOT NULL,
    error_code TEXT,
    user_ref INTEGER,
    recipient TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX orphan_receipts_ref ON orphan_receipts (user_ref, recipient);

-- The embedded durable queue (and, in distributed mode, the outbox).
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    available_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    deliveries INTEGER NOT NULL,
    created_at BIGINT NOT NULL
);
-- Leases take the oldest ready jobs: walking (queue, id) stops after LIMIT rows;
-- leased or delayed rows are skipped by the filter.
CREATE INDEX jobs_queue ON jobs (queue, id);
