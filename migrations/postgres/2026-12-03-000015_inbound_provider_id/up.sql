-- The provider's id of an inbound message (RBM's messageId): what a READ agent event
-- names. Not personal data (a random id).
ALTER TABLE inbound_messages ADD COLUMN provider_id TEXT;
