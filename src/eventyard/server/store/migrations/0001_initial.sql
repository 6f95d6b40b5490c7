-- Migration 1: the initial schema of the SQLite store (eventyard.store.sqlite).
-- A migration file NNNN_name.sql is applied once, in order, in one transaction with the
-- bump of PRAGMA user_version to NNNN. Never edit a released one: add the next file.

-- A deleted document stays as a tombstone (doc NULL) that keeps its revision, so a
-- re-created document continues the numbering and a stale expect_revision taken before
-- the delete can never match it.
CREATE TABLE catalog (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT,
    revision INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

-- AUTOINCREMENT: a sequence number is never reused, even after the newest records are
-- deleted, so a reader's "after_seq" cursor stays meaningful.
CREATE TABLE log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    bus TEXT NOT NULL,
    time REAL NOT NULL,
    body BLOB NOT NULL
);

-- A delivery usually carries its event's envelope as both event and payload (no Input
-- transformation), and the log holds the same bytes: storing them once more per delivery
-- tripled the bytes written per event and cost a third of the ingest rate. So event NULL
-- means "the body of log record seq", and payload NULL means "the same bytes as event".
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER,
    event BLOB,
    payload BLOB,
    first_seen REAL NOT NULL,
    due REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    CHECK ((seq IS NULL) != (event IS NULL))
);

CREATE INDEX deliveries_by_seq ON deliveries (seq) WHERE seq IS NOT NULL;

-- Whatever deletes log records (retention, an operator's sqlite3 shell), the pending
-- deliveries that point at them keep their event.
CREATE TRIGGER log_delete_keeps_delivery_events BEFORE DELETE ON log
BEGIN
    UPDATE deliveries SET event = OLD.body, seq = NULL WHERE seq = OLD.seq;
END;

-- n (the rowid) is the arrival order; receipt is the token of the latest receive.
CREATE TABLE messages (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    sent REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive REAL,
    receipt TEXT
);

-- Receive walks it in (visible_at, receive_count, n) order; receive_count makes it cover
-- queue_counts, and costs nothing on receive, which rewrites the entry anyway.
CREATE INDEX messages_by_visibility ON messages (queue, visible_at, receive_count);
