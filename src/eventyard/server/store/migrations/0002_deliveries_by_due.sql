-- Migration 2: pending deliveries by target and due time, for the delivery engine's
-- bounded window. The engine holds only a window of pending deliveries in memory and
-- pages the rest from here, one target at a time in (due, id) order, so that one dead
-- target's backlog cannot stand in front of another target's records. The rowid (id)
-- ends every index entry, so the index gives (target, due, id) order; it also lists the
-- targets that have pending deliveries with one seek per target.
CREATE INDEX deliveries_by_target_due ON deliveries (target, due);
