DROP INDEX capi_events_log_batch_idx;
ALTER TABLE capi_events_log DROP COLUMN batch_id, DROP COLUMN batch_size, DROP COLUMN fbtrace_id;
ALTER TABLE user_accounts DROP COLUMN app_secret;
ALTER TABLE ad_accounts DROP COLUMN app_secret;
ALTER TABLE account_directions DROP COLUMN ldu_enabled, DROP COLUMN ldu_country, DROP COLUMN ldu_state;
