-- The newest accepted event of each direction, read every minute for the
-- "no events for a direction for 24 h" alert (reports' metrics).
CREATE INDEX capi_events_log_direction_success_idx ON capi_events_log (direction_id, created_at)
    WHERE status = 'success';
