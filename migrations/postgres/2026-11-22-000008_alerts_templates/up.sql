-- Alert hooks, templates and the fast lane.

-- The fast lane: high-priority messages and their jobs are taken first.
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (queue, priority DESC, id);

-- Messages raised by an alert hook: the hook and fingerprint (hashed together) and the
-- alert's status, so a repeat inside the hook's window is found and not sent again.
-- Written in the transaction that accepts the message: the dedupe state cannot
-- disagree with what was sent.
ALTER TABLE messages ADD COLUMN alert_key TEXT;
ALTER TABLE messages ADD COLUMN alert_status TEXT;
CREATE INDEX messages_alert ON messages (alert_key, created_at);

-- Per-tenant templates: per-locale variants, validated at creation.
CREATE TABLE templates (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Alert hooks: found by the SHA-256 of their URL token; the configuration (it names
-- the on-call numbers) is sealed under the master key.
CREATE TABLE hooks (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX hooks_tenant ON hooks (tenant_id);
