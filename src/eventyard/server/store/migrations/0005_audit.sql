-- Migration 5: the audit part (see eventyard.server.store.sqlite_audit): the log's time
-- marks, archives and the trace journal.

-- The log's time index, sparse: one mark per bus and whole second (floor of the
-- ingestion time) that has records, plus the same per second for every bus together
-- (bus ''). from_seq: the smallest seq of the bus's records in this second or any later
-- one; upto_seq: the largest seq of its records in this second or any earlier one. A
-- window of seconds [low, high] lies in the seq range from the from_seq of the first
-- mark at or after low to the upto_seq of the last mark at or before high: two seeks,
-- whatever the width of the window and however the clock stepped back. Ingest writes
-- the marks once per group-commit batch, not one index entry per event.
CREATE TABLE log_marks (
    bus TEXT NOT NULL,
    second INTEGER NOT NULL,
    from_seq INTEGER NOT NULL,
    upto_seq INTEGER NOT NULL,
    PRIMARY KEY (bus, second)
) WITHOUT ROWID;

-- Retention drops the marks of expired seconds, of every bus.
CREATE INDEX log_marks_by_second ON log_marks (second);

-- The records of a store written before this migration get their marks
-- (CAST truncates toward zero; the subtraction makes it floor for negative times).
INSERT INTO log_marks (bus, second, from_seq, upto_seq)
SELECT bus, second,
    min(first) OVER (PARTITION BY bus ORDER BY second DESC ROWS UNBOUNDED PRECEDING),
    max(last) OVER (PARTITION BY bus ORDER BY second ROWS UNBOUNDED PRECEDING)
FROM (
    SELECT bus, CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)) AS second,
        min(seq) AS first, max(seq) AS last
    FROM log GROUP BY 1, 2
    UNION ALL
    SELECT '', CAST(time AS INTEGER) - (time < CAST(time AS INTEGER)), min(seq), max(seq)
    FROM log GROUP BY 2
);

-- One row per archive key: a short integer id for the records' keys, and the archive's
-- event count and body bytes, kept in the transactions that change its records.
CREATE TABLE archives (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    events INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);

-- seq = (floor(event time) << 29) | n (n counts from 1 within the archive and second),
-- so the primary key orders an archive's records by event time: a window of event time
-- is one range of it. archived is the ingestion time, from which retention counts.
CREATE TABLE archive_events (
    archive INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    time REAL NOT NULL,
    archived REAL NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (archive, seq)
);

CREATE INDEX archive_events_by_archived ON archive_events (archive, archived);

-- The trace journal: what happened to an event (or a queue message) after ingest.
CREATE TABLE trace (
    n INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    detail BLOB NOT NULL
);

-- No index on time: the journal is written in time order (give or take a flush), so
-- retention walks it in rowid order; one index fewer is a third less write per entry.
CREATE INDEX trace_by_key ON trace (key, time);
