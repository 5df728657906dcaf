-- A provider id may have several kept receipts (DELIVERED, then READ, both before the
-- submit response was stored): one row per status, not one per id.
CREATE TABLE orphan_receipts_new (
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL,
    raw_status TEXT NOT NULL,
    error_code TEXT,
    user_ref INTEGER,
    recipient TEXT,
    received_at BIGINT NOT NULL,
    submitted_at BIGINT,
    text_mac TEXT,
    text_len INTEGER,
    PRIMARY KEY (provider_id, status)
);
INSERT INTO orphan_receipts_new SELECT provider_id, status, raw_status, error_code, user_ref,
    recipient, received_at, submitted_at, text_mac, text_len FROM orphan_receipts;
DROP TABLE orphan_receipts;
ALTER TABLE orphan_receipts_new RENAME TO orphan_receipts;
CREATE INDEX orphan_receipts_ref ON orphan_receipts (user_ref, recipient);
CREATE INDEX orphan_receipts_recipient ON orphan_receipts (recipient);
