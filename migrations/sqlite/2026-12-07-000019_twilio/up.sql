-- A tenant's Twilio-compatible account: its SID and auth token (sealed: the token signs
-- status callbacks and inbound POSTs, so it is kept, not hashed).
CREATE TABLE twilio_accounts (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants(id),
    account_sid TEXT NOT NULL UNIQUE,
    auth_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- A number's Twilio settings: where inbound messages to it are POSTed.
CREATE TABLE twilio_numbers (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    phone_number TEXT NOT NULL,
    sms_url TEXT,
    sms_method TEXT NOT NULL DEFAULT 'POST',
    friendly_name TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, phone_number)
);
-- Messages created through the Twilio API: what Twilio's resource shows beyond
-- Hermod's (JSON), and when one was deleted through it.
ALTER TABLE messages ADD COLUMN twilio TEXT;
ALTER TABLE messages ADD COLUMN deleted_at BIGINT;
