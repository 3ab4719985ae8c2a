-- How long an account keeps what its customers wrote: message texts (the
-- customer's, the operator's and the bot's) and the bodies of CRM changes.
-- Past that age the `reports` service's sweep blanks them; counts, levels,
-- events and the dialogs themselves stay. Defaults and reasons:
-- docs/operations.md, "Customers' personal data".
ALTER TABLE user_accounts
    ADD COLUMN retain_messages_days   INTEGER NOT NULL DEFAULT 90
        CHECK (retain_messages_days BETWEEN 7 AND 3650),
    ADD COLUMN retain_crm_bodies_days INTEGER NOT NULL DEFAULT 30
        CHECK (retain_crm_bodies_days BETWEEN 1 AND 3650);

-- What the sweep still has to blank, oldest first per number / connection;
-- each index shrinks as its rows are blanked.
CREATE INDEX dialog_messages_texts_by_age_idx ON dialog_messages (instance_name, sent_at)
    WHERE text IS NOT NULL;
CREATE INDEX bot_replies_texts_by_age_idx ON bot_replies (created_at)
    WHERE reply_text IS NOT NULL;
CREATE INDEX crm_changes_bodies_by_age_idx ON crm_changes (connection_id, received_at)
    WHERE change <> '{}'::jsonb;
