-- Migration 3: FIFO queues. A message of a FIFO queue has a message group: receive
-- returns a group's messages in arrival order (n) and none of a group while one of it
-- is in flight. Its de-duplication key (MessageDeduplicationId, or the body's SHA-256,
-- scoped by the API to the queue or the group) is remembered for five minutes in
-- message_dedup: a send with a key seen there is accepted and not enqueued again.
ALTER TABLE messages ADD COLUMN group_id TEXT;
ALTER TABLE messages ADD COLUMN dedup_id TEXT;
CREATE INDEX messages_by_group ON messages (queue, group_id, n) WHERE group_id IS NOT NULL;
CREATE TABLE message_dedup (
    queue TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
CREATE INDEX message_dedup_by_expiry ON message_dedup (expires);
