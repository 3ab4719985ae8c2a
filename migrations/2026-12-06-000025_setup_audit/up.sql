-- Set-up in the browser (issue 29): a dashboard session has a role, and
-- every change to an account's set-up, from the pages or the CLI, is kept.

-- viewer: today's read-only dashboard; editor: may also change the set-up.
-- link_id: the first characters of the sign-in link's nonce (already used,
-- so showing it grants nothing): who made a change, in the audit trail.
ALTER TABLE dashboard_sessions
    ADD COLUMN role text NOT NULL DEFAULT 'viewer' CHECK (role IN ('viewer', 'editor')),
    ADD COLUMN link_id text NOT NULL DEFAULT '';

-- One row per change: who (`cli:<user>` or `link:<link id>`), when, what
-- (action and target), the settings before and after. Secrets are never
-- stored here: a secret appears as "set"/"unset" only.
CREATE TABLE setup_changes (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    user_account_id uuid REFERENCES user_accounts(id) ON DELETE CASCADE,
    actor           text NOT NULL,
    action          text NOT NULL,
    target          text NOT NULL,
    before          jsonb,
    after           jsonb
);
CREATE INDEX setup_changes_account_idx ON setup_changes (user_account_id, at DESC, id DESC);

-- A CRM authorisation started from the set-up pages (OAuth), until its
-- callback: the state (hashed) is single-use, bound to the session that
-- started it, and expires. The integration's secret is sealed like every
-- stored secret.
CREATE TABLE crm_oauth_states (
    state_hash      text PRIMARY KEY,
    session_hash    text NOT NULL,
    user_account_id uuid NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    crm_type        text NOT NULL CHECK (crm_type IN ('amocrm', 'bitrix24')),
    base_url        text NOT NULL,
    client_id       text NOT NULL,
    client_secret   text NOT NULL,
    redirect_uri    text NOT NULL,
    default_region  text NOT NULL,
    -- Bitrix24: the application token its events will carry (sealed).
    application_token text,
    expires_at      timestamptz NOT NULL
);
CREATE INDEX crm_oauth_states_expiry_idx ON crm_oauth_states (expires_at);
