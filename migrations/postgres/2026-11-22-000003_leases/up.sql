-- Which worker process holds each SMPP bind (distributed mode): a lease renewed
-- while the holder lives, taken over once it expires.
CREATE TABLE bind_leases (
    bind_id TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- The holder's view of the bind (JSON), refreshed with each renewal, so that any
    -- API process can show every bind of the cluster.
    status TEXT
);
