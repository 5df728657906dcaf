ALTER TABLE inbound_parts DROP COLUMN channel;
ALTER TABLE inbound_messages DROP COLUMN channel;
