ALTER TABLE messages DROP COLUMN traffic_type;
