ALTER TABLE messages DROP COLUMN user_id;
DROP TABLE app_inbox;
DROP TABLE devices;
