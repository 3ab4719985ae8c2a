DROP INDEX dialog_analysis_direction_first_idx;
DROP INDEX dialog_analysis_undirected_idx;
DROP TABLE api_keys;
DROP TABLE ad_spend_syncs;
ALTER TABLE ad_spend DROP CONSTRAINT ad_spend_account_date_campaign_key;
DELETE FROM ad_spend a USING ad_spend b
    WHERE a.ad_account_id = b.ad_account_id AND a.spend_date = b.spend_date AND a.id > b.id;
ALTER TABLE ad_spend ADD CONSTRAINT ad_spend_ad_account_id_spend_date_key UNIQUE (ad_account_id, spend_date);
ALTER TABLE ad_spend DROP COLUMN campaign_id, DROP COLUMN campaign_name, DROP COLUMN source;
DROP INDEX conversation_reports_unsent_idx;
ALTER TABLE conversation_reports
    DROP COLUMN language, DROP COLUMN telegram_status, DROP COLUMN telegram_parts_sent,
    DROP COLUMN telegram_attempts, DROP COLUMN telegram_next_at, DROP COLUMN telegram_lease_until,
    DROP COLUMN telegram_error, DROP COLUMN telegram_sent_at, DROP COLUMN updated_at;
DROP INDEX whatsapp_phone_numbers_account_idx;
ALTER TABLE whatsapp_phone_numbers DROP COLUMN user_account_id;
ALTER TABLE user_accounts DROP COLUMN telegram_bot_token, DROP COLUMN telegram_chat_id;
