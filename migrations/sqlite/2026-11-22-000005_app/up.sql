-- Devices of the business's own app (encrypted app channel). Only an HMAC of the
-- device token is stored; the public key is X25519 (32 bytes, base64url).
CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    recipient TEXT,
    user_id TEXT,
    public_key TEXT NOT NULL,
    aead TEXT NOT NULL,
    platform TEXT NOT NULL,
    label TEXT,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX devices_recipient ON devices (tenant_id, recipient);
CREATE INDEX devices_user ON devices (tenant_id, user_id);

-- Sealed envelopes waiting for a device: ciphertext only. `seq` is the inbox cursor.
CREATE TABLE app_inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attempt_id TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    acked_at BIGINT,
    UNIQUE (device_id, message_id)
);
CREATE INDEX app_inbox_device ON app_inbox (device_id, seq);

-- A message may also name the tenant's own user id: the app channel then reaches the
-- devices registered with it too.
ALTER TABLE messages ADD COLUMN user_id TEXT;
