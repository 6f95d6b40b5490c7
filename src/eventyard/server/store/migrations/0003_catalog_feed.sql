-- Migration 3: the catalog's change feed (Store.catalog_changes). Every put and delete
-- stamps its row with the next global revision, `changed` (the highest one in the table
-- plus one), so the feed is the catalog read in `changed` order: it holds exactly the
-- latest change of each key (compaction comes free), and a delete is its tombstone row
-- (doc NULL). Tombstones are never removed (they keep the key's revision, which must
-- never be reused), so a reader can never miss a delete however far behind it is.
ALTER TABLE catalog ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;

-- The documents of an older store enter the feed in key order, numbered from 1.
UPDATE catalog SET changed = numbered.n
FROM (SELECT kind AS k, key AS y, row_number() OVER (ORDER BY kind, key) AS n FROM catalog)
    AS numbered
WHERE catalog.kind = numbered.k AND catalog.key = numbered.y;

CREATE UNIQUE INDEX catalog_by_change ON catalog (changed);
