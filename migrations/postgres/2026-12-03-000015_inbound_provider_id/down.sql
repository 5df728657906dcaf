ALTER TABLE inbound_messages DROP COLUMN provider_id;
