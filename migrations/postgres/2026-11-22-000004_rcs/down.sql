DROP TABLE webhook_events;
ALTER TABLE inbound_messages DROP COLUMN payload;
ALTER TABLE messages DROP COLUMN content;
