ALTER TABLE messages DROP COLUMN smpp;
DROP TABLE smpp_parts;
DROP TABLE smpp_outbox;
DROP TABLE smpp_accounts;
