-- The ad each dialog started from (Evolution's externalAdReply.sourceId,
-- the Cloud API's referral.source_id), kept from the first ad message.
ALTER TABLE dialog_analysis ADD COLUMN ad_id TEXT
    CHECK (ad_id ~ '^[0-9]{1,32}$');
-- Dialogs recorded before: their ad context already holds the id.
UPDATE dialog_analysis SET ad_id = src.id
FROM (
    SELECT id AS dialog_id, coalesce(
        ad_context #>> '{externalAdReply,sourceId}',
        ad_context #>> '{externalAdReply,sourceID}',
        CASE WHEN coalesce(ad_context #>> '{referral,source_type}', 'ad') = 'ad'
             THEN ad_context #>> '{referral,source_id}' END) AS id
    FROM dialog_analysis
    WHERE ad_context IS NOT NULL
      AND lower(coalesce(ad_context #>> '{externalAdReply,sourceType}', 'ad')) = 'ad'
) src
WHERE dialog_analysis.id = src.dialog_id AND src.id ~ '^[0-9]{1,32}$';

-- Spend per ad (insights at level=ad): the ad set and ad beside the
-- campaign. Rows of a CSV import, or synced before, have no ad ('').
ALTER TABLE ad_spend
    ADD COLUMN adset_id   TEXT NOT NULL DEFAULT '',
    ADD COLUMN adset_name TEXT,
    ADD COLUMN ad_id      TEXT NOT NULL DEFAULT '',
    ADD COLUMN ad_name    TEXT;
ALTER TABLE ad_spend DROP CONSTRAINT ad_spend_account_date_campaign_key;
ALTER TABLE ad_spend ADD CONSTRAINT ad_spend_account_date_ad_key
    UNIQUE (ad_account_id, spend_date, campaign_id, adset_id, ad_id);
-- The ads report looks spend up by ad over a range of days.
CREATE INDEX ad_spend_ad_idx ON ad_spend (ad_id, spend_date) WHERE ad_id <> '';

-- CAPI health reads each direction's newest refusal and its last 24 h of
-- attempts of every status (the success-only index serves acceptances).
CREATE INDEX capi_events_log_direction_time_idx ON capi_events_log (direction_id, created_at);

-- The leads export pages by (first_message, id) per direction: with the id
-- in the index a batch is a backward index scan of its own rows, not a
-- sort of the whole range. It serves every (direction_id, first_message) read.
CREATE INDEX dialog_analysis_direction_first_id_idx ON dialog_analysis (direction_id, first_message, id);
DROP INDEX dialog_analysis_direction_first_idx;
