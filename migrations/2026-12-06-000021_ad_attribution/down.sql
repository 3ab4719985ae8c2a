CREATE INDEX dialog_analysis_direction_first_idx ON dialog_analysis (direction_id, first_message);
DROP INDEX dialog_analysis_direction_first_id_idx;
DROP INDEX capi_events_log_direction_time_idx;
DROP INDEX ad_spend_ad_idx;
ALTER TABLE ad_spend DROP CONSTRAINT ad_spend_account_date_ad_key;
-- Per campaign and day again: the ad rows of a day summed into one.
CREATE TEMP TABLE campaign_spend AS
    SELECT ad_account_id, spend_date, campaign_id, max(campaign_name) AS campaign_name,
           sum(spend) AS spend, max(currency) AS currency, max(source) AS source
    FROM ad_spend GROUP BY 1, 2, 3;
DELETE FROM ad_spend;
INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, campaign_name, spend, currency, source)
    SELECT ad_account_id, spend_date, campaign_id, campaign_name, spend, currency, source FROM campaign_spend;
DROP TABLE campaign_spend;
ALTER TABLE ad_spend DROP COLUMN adset_id, DROP COLUMN adset_name, DROP COLUMN ad_id, DROP COLUMN ad_name;
ALTER TABLE ad_spend ADD CONSTRAINT ad_spend_account_date_campaign_key
    UNIQUE (ad_account_id, spend_date, campaign_id);
ALTER TABLE dialog_analysis DROP COLUMN ad_id;
