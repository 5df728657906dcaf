-- Rich content of a message (JSON: content + suggestions); `body` keeps its plain text.
ALTER TABLE messages ADD COLUMN content TEXT;
-- What a rich channel adds to an inbound message (postback data, location), as JSON.
ALTER TABLE inbound_messages ADD COLUMN payload TEXT;

-- Provider event ids already processed (RBM eventId / messageId), so that a
-- redelivered webhook changes nothing.
CREATE TABLE webhook_events (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source, event_id)
);
