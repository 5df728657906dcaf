DROP INDEX webhook_events_received;
DROP INDEX orphan_receipts_recipient;
ALTER TABLE orphan_receipts DROP COLUMN text_len;
ALTER TABLE orphan_receipts DROP COLUMN text_mac;
ALTER TABLE orphan_receipts DROP COLUMN submitted_at;
