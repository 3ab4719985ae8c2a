ALTER TABLE account_directions DROP COLUMN capi_purchase_rule;
DELETE FROM capi_deliveries WHERE event_level = 4;
DELETE FROM capi_events_log WHERE event_level = 4;
ALTER TABLE capi_events_log DROP CONSTRAINT capi_events_log_event_level_check;
ALTER TABLE capi_events_log ADD CONSTRAINT capi_events_log_event_level_check
    CHECK (event_level BETWEEN 1 AND 3);
ALTER TABLE capi_deliveries
    DROP CONSTRAINT capi_deliveries_dialog_level_order_key,
    DROP CONSTRAINT capi_deliveries_purchase_check,
    DROP CONSTRAINT capi_deliveries_event_level_check,
    DROP COLUMN order_ref,
    DROP COLUMN purchase_value,
    DROP COLUMN purchase_currency,
    ADD CONSTRAINT capi_deliveries_event_level_check CHECK (event_level BETWEEN 1 AND 3),
    ADD CONSTRAINT capi_deliveries_dialog_id_event_level_key UNIQUE (dialog_id, event_level);
