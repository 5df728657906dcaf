DROP TABLE hooks;
DROP TABLE templates;
DROP INDEX messages_alert;
ALTER TABLE messages DROP COLUMN alert_status;
ALTER TABLE messages DROP COLUMN alert_key;
DROP INDEX jobs_queue;
CREATE INDEX jobs_queue ON jobs (queue, id);
ALTER TABLE jobs DROP COLUMN priority;
ALTER TABLE messages DROP COLUMN priority;
