-- What an RCS message is for (RBM messageTrafficType): authentication, transaction,
-- promotion, service_request, acknowledgement; NULL = the agent's default.
ALTER TABLE messages ADD COLUMN traffic_type TEXT;
