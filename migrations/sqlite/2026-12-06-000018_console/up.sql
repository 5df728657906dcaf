-- Keys with a name, a role (admin | send | read), an expiry and the time of last use.
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
-- The operator's limits on a tenant (JSON), its suspension and its deletion.
ALTER TABLE tenants ADD COLUMN limits TEXT;
ALTER TABLE tenants ADD COLUMN suspended_at BIGINT;
ALTER TABLE tenants ADD COLUMN deleted_at BIGINT;
-- The console's sessions: the cookie's token only as its SHA-256. tenant_id NULL: the
-- operator.
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT,
    key_id TEXT,
    role TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
