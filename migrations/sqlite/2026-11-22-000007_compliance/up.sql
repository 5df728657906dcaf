-- Compliance: the per-tenant audit hash chain, content encrypted at rest, retention.

-- Audit facts are written here in the transaction that causes them (cheap, no lock),
-- then chained in order by one chainer at a time (the audit stage).
CREATE TABLE audit_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    data TEXT NOT NULL
);

-- Each tenant's chain: entry n holds entry n-1's hash and its own SHA-256 over the
-- canonical encoding (README, "Audit log").
CREATE TABLE audit_entries (
    tenant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;

CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    checkpointed_seq BIGINT NOT NULL DEFAULT 0
);

-- Ed25519 signatures over (tenant, seq, head hash, time).
CREATE TABLE audit_checkpoints (
    tenant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;

-- One data key per (tenant, recipient), wrapped by a master key; deleting the row
-- shreds every body and number sealed under it. `subject` is the number's HMAC.
CREATE TABLE subject_keys (
    tenant_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, subject)
) WITHOUT ROWID;

-- Numbers are found by their HMAC; the number columns hold ciphertext. One index:
-- HMACs are random, so each index costs a random page write per message.
DROP INDEX messages_tenant_to;
DROP INDEX messages_to;
ALTER TABLE messages ADD COLUMN to_hash TEXT;
CREATE INDEX messages_to_hash ON messages (to_hash, id);
ALTER TABLE inbound_messages ADD COLUMN from_hash TEXT;
CREATE INDEX inbound_tenant_from_hash ON inbound_messages (tenant_id, from_hash);

-- Retention: message content older than this many days is shredded (NULL = keep).
ALTER TABLE tenants ADD COLUMN retention_days BIGINT;
-- When a message's content was shredded (retention or erasure).
ALTER TABLE messages ADD COLUMN shredded_at BIGINT;

-- Opt-outs are found by the number's HMAC (`recipient`); `number` holds the number
-- sealed under its subject's key, so an erased subject stays suppressed but unnamed.
ALTER TABLE opt_outs ADD COLUMN number TEXT;
