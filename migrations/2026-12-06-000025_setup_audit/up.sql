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
