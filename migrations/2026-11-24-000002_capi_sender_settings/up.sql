-- Per-direction Limited Data Use (data_processing_options) and per-app
-- appsecret_proof; batch ids and Meta's trace id on every logged attempt.

ALTER TABLE account_directions
    ADD COLUMN ldu_enabled BOOLEAN NOT NULL DEFAULT false,
    -- Meta's codes: country 0 = geolocate, 1 = US; state 0 = geolocate, 1000 = California.
    ADD COLUMN ldu_country INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN ldu_state INTEGER NOT NULL DEFAULT 0;

-- The secret of the Meta app that issued the ad account's token; when set,
-- requests carry appsecret_proof = HMAC-SHA256(app_secret, access_token).
ALTER TABLE ad_accounts ADD COLUMN app_secret TEXT;
ALTER TABLE user_accounts ADD COLUMN app_secret TEXT;

ALTER TABLE capi_events_log
    ADD COLUMN batch_id UUID,
    ADD COLUMN batch_size INTEGER,
    ADD COLUMN fbtrace_id TEXT;
CREATE INDEX capi_events_log_batch_idx ON capi_events_log (batch_id) WHERE batch_id IS NOT NULL;
