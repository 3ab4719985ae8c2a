-- CRM webhooks: who a connection's webhooks must say they are from, and
-- every change they reported, stored once, until it is evaluated.
ALTER TABLE crm_connections
    ADD COLUMN account_subdomain TEXT,      -- amoCRM: must equal account[subdomain]
    ADD COLUMN account_id TEXT,             -- amoCRM: must equal account[id] when the body has one
    ADD COLUMN member_id TEXT,              -- Bitrix24: must equal auth[member_id]
    ADD COLUMN application_token TEXT;      -- Bitrix24: compared with auth[application_token]

CREATE TABLE crm_changes (
    id            BIGSERIAL PRIMARY KEY,
    connection_id UUID NOT NULL REFERENCES crm_connections(id) ON DELETE CASCADE,
    entity        TEXT NOT NULL,
    action        TEXT NOT NULL,
    entity_id     TEXT NOT NULL,
    -- SHA-256 of the change as reported: a redelivered webhook is stored once.
    change_key    TEXT NOT NULL,
    change        JSONB NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    evaluated_at  TIMESTAMPTZ,
    UNIQUE (connection_id, change_key)
);
CREATE INDEX crm_changes_unevaluated_idx ON crm_changes (received_at) WHERE evaluated_at IS NULL;
