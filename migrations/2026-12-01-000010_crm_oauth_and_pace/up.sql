-- CRM OAuth: the refresh token and the client that may use it, and when the
-- access token expires. A refresh replaces the pair in one row update under
-- the row's lock, so two replicas never spend the same refresh token.
ALTER TABLE crm_connections
    ADD COLUMN refresh_token       TEXT,
    ADD COLUMN token_expires_at    TIMESTAMPTZ,
    ADD COLUMN oauth_client_id     TEXT,
    ADD COLUMN oauth_client_secret TEXT,
    ADD COLUMN oauth_redirect_uri  TEXT,       -- amoCRM asks for it again on refresh
    ADD COLUMN token_refreshed_at  TIMESTAMPTZ;

-- One request pace per CRM connection (= one CRM account), shared by every
-- replica: `next_at` is the theoretical arrival time of the generic cell
-- rate algorithm; each request reserves its moment by moving it on.
CREATE TABLE crm_request_pace (
    connection_id UUID PRIMARY KEY REFERENCES crm_connections(id) ON DELETE CASCADE,
    next_at       TIMESTAMPTZ NOT NULL
);
