-- The channel an inbound message (and a waiting part) came on, recorded by the channel
-- that received it. Rows from before this were RCS when their connector is an RBM
-- agent (`rbm:<name>`), SMS otherwise.
ALTER TABLE inbound_messages ADD COLUMN channel TEXT NOT NULL DEFAULT 'sms';
UPDATE inbound_messages SET channel = 'rcs' WHERE connector LIKE 'rbm:%';
ALTER TABLE inbound_parts ADD COLUMN channel TEXT NOT NULL DEFAULT 'sms';
UPDATE inbound_parts SET channel = 'rcs' WHERE connector LIKE 'rbm:%';
