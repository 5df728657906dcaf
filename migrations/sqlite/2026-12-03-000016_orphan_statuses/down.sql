CREATE TABLE orphan_receipts_old (
    provider_id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    raw_status TEXT NOT NULL,
    error_code TEXT,
    user_ref INTEGER,
    recipient TEXT,
    received_at BIGINT NOT NULL,
    submitted_at BIGINT,
    text_mac TEXT,
    text_len INTEGER
);
INSERT OR IGNORE INTO orphan_receipts_old SELECT provider_id, status, raw_status, error_code,
    user_ref, recipient, received_at, submitted_at, text_mac, text_len FROM orphan_receipts
    ORDER BY received_at;
DROP TABLE orphan_receipts;
ALTER TABLE orphan_receipts_old RENAME TO orphan_receipts;
CREATE INDEX orphan_receipts_ref ON orphan_receipts (user_ref, recipient);
CREATE INDEX orphan_receipts_recipient ON orphan_receipts (recipient);
