-- What a receipt repeats of its submit (the SMSC's submit date, a keyed hash of the
-- start of its text): how a kept receipt is matched to a submit whose response was
-- lost, when the SMSC does not echo user_message_reference.
ALTER TABLE orphan_receipts ADD COLUMN submitted_at BIGINT;
ALTER TABLE orphan_receipts ADD COLUMN text_mac TEXT;
ALTER TABLE orphan_receipts ADD COLUMN text_len INTEGER;
CREATE INDEX orphan_receipts_recipient ON orphan_receipts (recipient);
-- Deduplication markers of provider events are kept for a retention period.
CREATE INDEX webhook_events_received ON webhook_events (received_at);
