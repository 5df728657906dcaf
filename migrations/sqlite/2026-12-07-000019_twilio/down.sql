ALTER TABLE messages DROP COLUMN deleted_at;
ALTER TABLE messages DROP COLUMN twilio;
DROP TABLE twilio_numbers;
DROP TABLE twilio_accounts;
