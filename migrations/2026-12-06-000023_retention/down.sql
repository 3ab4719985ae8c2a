DROP INDEX crm_changes_bodies_by_age_idx;
DROP INDEX bot_replies_texts_by_age_idx;
DROP INDEX dialog_messages_texts_by_age_idx;
ALTER TABLE user_accounts DROP COLUMN retain_crm_bodies_days, DROP COLUMN retain_messages_days;
