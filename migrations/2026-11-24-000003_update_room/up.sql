-- A delivery is updated two or three times (lease, maybe a renewal, close)
-- and a dialog's sent flags once per level. Leave room on each page and keep
-- the updated columns out of indexes, so PostgreSQL updates in place (HOT)
-- instead of writing new index entries for every version.
ALTER TABLE capi_deliveries SET (fillfactor = 50);
ALTER TABLE dialog_analysis SET (fillfactor = 80);
-- Indexed `status` made every close a non-HOT update; nothing reads by it.
DROP INDEX capi_deliveries_pending_idx;
