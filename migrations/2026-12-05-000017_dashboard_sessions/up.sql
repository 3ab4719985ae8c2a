-- Dashboard sign-in (reports): every sign-in link works once, sessions live
-- in the database so that signing out ends one and `capi dashboard-sessions
-- revoke` ends all of an account's at once.

-- Bumped by a revoke: links and sessions of an older generation are dead.
ALTER TABLE user_accounts ADD COLUMN dashboard_generation integer NOT NULL DEFAULT 0;

-- The nonce of every sign-in link used, until the link would have expired.
CREATE TABLE dashboard_sign_ins (
    nonce           text PRIMARY KEY,
    user_account_id uuid NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    used_at         timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX dashboard_sign_ins_expiry_idx ON dashboard_sign_ins (expires_at);

-- One row per signed-in browser; the cookie holds the token, only its
-- SHA-256 is stored.
CREATE TABLE dashboard_sessions (
    token_hash      text PRIMARY KEY,
    user_account_id uuid NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    generation      integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_account_idx ON dashboard_sessions (user_account_id);
CREATE INDEX dashboard_sessions_expiry_idx ON dashboard_sessions (expires_at);
