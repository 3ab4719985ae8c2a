-- Reports, analytics API, dashboard and ad spend (issue 13).

-- Where an account's daily report goes.
ALTER TABLE user_accounts
    ADD COLUMN telegram_bot_token TEXT,
    ADD COLUMN telegram_chat_id   TEXT;

-- An instance belongs to an account even when its direction is gone, so its
-- dialogs still appear in the account's report (under "No direction").
ALTER TABLE whatsapp_phone_numbers
    ADD COLUMN user_account_id UUID REFERENCES user_accounts(id) ON DELETE CASCADE;
UPDATE whatsapp_phone_numbers w SET user_account_id = d.user_account_id
FROM account_directions d WHERE d.id = w.direction_id;
CREATE INDEX whatsapp_phone_numbers_account_idx ON whatsapp_phone_numbers (user_account_id);

-- A report's delivery to Telegram: the row is the once-per-(account, day)
-- guard; parts are counted so a retry resumes after the last part sent.
ALTER TABLE conversation_reports
    ADD COLUMN language            TEXT NOT NULL DEFAULT 'ru' CHECK (language IN ('ru', 'en')),
    ADD COLUMN telegram_status     TEXT NOT NULL DEFAULT 'pending'
        CHECK (telegram_status IN ('pending', 'sent', 'failed', 'not_configured')),
    ADD COLUMN telegram_parts_sent INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN telegram_attempts   INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN telegram_next_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN telegram_lease_until TIMESTAMPTZ,
    ADD COLUMN telegram_error      TEXT,
    ADD COLUMN telegram_sent_at    TIMESTAMPTZ,
    ADD COLUMN updated_at          TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX conversation_reports_unsent_idx ON conversation_reports (telegram_next_at)
    WHERE telegram_status = 'pending';

-- Spend per campaign and day (Marketing API insights, or a CSV import).
ALTER TABLE ad_spend
    ADD COLUMN campaign_id   TEXT NOT NULL DEFAULT '',
    ADD COLUMN campaign_name TEXT,
    ADD COLUMN source        TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'csv'));
ALTER TABLE ad_spend DROP CONSTRAINT ad_spend_ad_account_id_spend_date_key;
ALTER TABLE ad_spend ADD CONSTRAINT ad_spend_account_date_campaign_key
    UNIQUE (ad_account_id, spend_date, campaign_id);

-- One spend sync per ad account and day, whichever replica takes it.
CREATE TABLE ad_spend_syncs (
    ad_account_id UUID NOT NULL REFERENCES ad_accounts(id) ON DELETE CASCADE,
    sync_date     DATE NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 1,
    lease_until   TIMESTAMPTZ,
    next_at       TIMESTAMPTZ,
    rows_synced   INTEGER,
    error         TEXT,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (ad_account_id, sync_date)
);

-- API keys for the reports API: only a SHA-256 of the key is kept.
CREATE TABLE api_keys (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_account_id UUID NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    key_prefix      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at      TIMESTAMPTZ,
    last_used_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_account_idx ON api_keys (user_account_id);

-- The report's and the API's reads.
CREATE INDEX dialog_analysis_undirected_idx ON dialog_analysis (instance_name, last_message)
    WHERE direction_id IS NULL;
CREATE INDEX dialog_analysis_direction_first_idx ON dialog_analysis (direction_id, first_message);
