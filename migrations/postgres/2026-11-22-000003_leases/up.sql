-- Which worker process holds each SMPP bind (distributed mode): a lease renewed
-- while the holder lives, taken over once it expires.
CREATE TABLE bind_leases (
    bind_id TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
