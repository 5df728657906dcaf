DROP TABLE opt_outs;
DROP TABLE inbound_parts;
DROP TABLE inbound_messages;
DROP INDEX messages_to;
ALTER TABLE messages DROP COLUMN reason;
ALTER TABLE messages DROP COLUMN send_at;
