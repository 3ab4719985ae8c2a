-- The fourth level, purchase: reached from the CRM (a won deal) or by hand,
-- with an amount and a currency. Unlike the three conversation levels it is
-- claimed once per (dialog, order reference): a customer's second paid deal
-- is a second Purchase, a redelivered webhook or an edit of a won deal finds
-- its row and sends nothing.
ALTER TABLE capi_deliveries DROP CONSTRAINT capi_deliveries_event_level_check;
ALTER TABLE capi_deliveries DROP CONSTRAINT capi_deliveries_dialog_id_event_level_key;
ALTER TABLE capi_deliveries
    ADD COLUMN order_ref         TEXT NOT NULL DEFAULT '',
    ADD COLUMN purchase_value    NUMERIC,
    ADD COLUMN purchase_currency TEXT,
    ADD CONSTRAINT capi_deliveries_event_level_check CHECK (event_level BETWEEN 1 AND 4),
    ADD CONSTRAINT capi_deliveries_purchase_check CHECK (
        CASE WHEN event_level = 4
             THEN order_ref <> '' AND purchase_value >= 0 AND purchase_currency ~ '^[A-Z]{3}$'
             ELSE order_ref = '' AND purchase_value IS NULL AND purchase_currency IS NULL
        END),
    ADD CONSTRAINT capi_deliveries_dialog_level_order_key UNIQUE (dialog_id, event_level, order_ref);

ALTER TABLE capi_events_log DROP CONSTRAINT capi_events_log_event_level_check;
ALTER TABLE capi_events_log ADD CONSTRAINT capi_events_log_event_level_check
    CHECK (event_level BETWEEN 1 AND 4);

-- A CRM direction's purchase rule: NULL = the CRM's default (amoCRM: status
-- 142 with price in the account's currency; Bitrix24: STAGE_SEMANTIC_ID S
-- with OPPORTUNITY and CURRENCY_ID), false = none, else the rule.
ALTER TABLE account_directions ADD COLUMN capi_purchase_rule JSONB;
