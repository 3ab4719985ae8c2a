-- The whole data model of the spec (design.md §4) plus what the pipeline
-- needs to be exactly-once: the outbox, the delivery claims and the buffer
-- sequence numbers.

-- Tenancy ---------------------------------------------------------------

CREATE TABLE user_accounts (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name          TEXT NOT NULL,
    -- Fallback Meta token when an ad account has none.
    access_token  TEXT,
    report_language TEXT NOT NULL DEFAULT 'ru' CHECK (report_language IN ('ru', 'en')),
    timezone      TEXT NOT NULL DEFAULT 'UTC',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE ad_accounts (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_account_id  UUID NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    meta_ad_account_id TEXT,
    access_token     TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ad_accounts_user_idx ON ad_accounts (user_account_id);

CREATE TABLE account_directions (
    id                     UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_account_id        UUID NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    ad_account_id          UUID REFERENCES ad_accounts(id) ON DELETE SET NULL,
    name                   TEXT NOT NULL,
    capi_enabled           BOOLEAN NOT NULL DEFAULT false,
    capi_source            TEXT NOT NULL DEFAULT 'whatsapp' CHECK (capi_source IN ('whatsapp', 'crm')),
    capi_crm_type          TEXT CHECK (capi_crm_type IN ('amocrm', 'bitrix24')),
    capi_interest_fields   JSONB NOT NULL DEFAULT '[]'::jsonb,
    capi_qualified_fields  JSONB NOT NULL DEFAULT '[]'::jsonb,
    capi_scheduled_fields  JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- Meta pixel / dataset id the events go to.
    pixel_id               TEXT,
    whatsapp_business_account_id TEXT,
    event_name_interest    TEXT NOT NULL DEFAULT 'Lead',
    event_name_qualified   TEXT NOT NULL DEFAULT 'CompleteRegistration',
    event_name_scheduled   TEXT NOT NULL DEFAULT 'Schedule',
    test_event_code        TEXT,
    bot_enabled            BOOLEAN NOT NULL DEFAULT true,
    bot_prompt             TEXT,
    qualification_prompt   TEXT,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_account_id, name)
);

-- A WhatsApp instance (Evolution API) belongs to one direction.
CREATE TABLE whatsapp_phone_numbers (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    instance_name   TEXT NOT NULL UNIQUE,
    direction_id    UUID REFERENCES account_directions(id) ON DELETE SET NULL,
    phone_number    TEXT,
    -- Shared secret Evolution sends with each webhook (header or URL token).
    webhook_secret  TEXT NOT NULL,
    evolution_api_key TEXT,
    evolution_api_version TEXT NOT NULL DEFAULT 'v2' CHECK (evolution_api_version IN ('v1', 'v2')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX whatsapp_phone_numbers_direction_idx ON whatsapp_phone_numbers (direction_id);

CREATE TABLE crm_connections (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_account_id  UUID NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    crm_type         TEXT NOT NULL CHECK (crm_type IN ('amocrm', 'bitrix24')),
    base_url         TEXT NOT NULL,
    access_token     TEXT,
    webhook_secret   TEXT,
    default_region   TEXT NOT NULL DEFAULT 'RU',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_account_id, crm_type)
);

-- Conversations ---------------------------------------------------------

CREATE TABLE leads (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    instance_name    TEXT NOT NULL,
    contact_key      TEXT NOT NULL,
    contact_phone    TEXT,
    contact_lid      TEXT,
    name             TEXT,
    ctwa_clid        TEXT,
    source_ad_id     TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (instance_name, contact_key)
);

-- One dialog = one contact on one WhatsApp instance.
CREATE TABLE dialog_analysis (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    instance_name        TEXT NOT NULL,
    contact_key          TEXT NOT NULL,
    contact_phone        TEXT,
    contact_lid          TEXT,
    contact_name         TEXT,
    lead_id              UUID REFERENCES leads(id) ON DELETE SET NULL,
    -- Filled by trigger from instance_name → whatsapp_phone_numbers.
    direction_id         UUID REFERENCES account_directions(id) ON DELETE SET NULL,
    incoming_count       INTEGER NOT NULL DEFAULT 0,
    outgoing_count       INTEGER NOT NULL DEFAULT 0,
    first_message        TIMESTAMPTZ,
    last_message         TIMESTAMPTZ,
    ctwa_clid            TEXT,
    from_ad              BOOLEAN NOT NULL DEFAULT false,
    ad_context           JSONB,
    interest_level       TEXT CHECK (interest_level IN ('hot', 'warm', 'cold')),
    funnel_stage         TEXT,
    qualification_reason TEXT,
    analyzed_at          TIMESTAMPTZ,
    -- The cross-replica message buffer (design.md §2).
    buffer_seq           BIGINT NOT NULL DEFAULT 0,
    buffer_flushed_seq   BIGINT NOT NULL DEFAULT 0,
    capi_interest_sent       BOOLEAN NOT NULL DEFAULT false,
    capi_interest_sent_at    TIMESTAMPTZ,
    capi_interest_event_id   TEXT,
    capi_qualified_sent      BOOLEAN NOT NULL DEFAULT false,
    capi_qualified_sent_at   TIMESTAMPTZ,
    capi_qualified_event_id  TEXT,
    capi_scheduled_sent      BOOLEAN NOT NULL DEFAULT false,
    capi_scheduled_sent_at   TIMESTAMPTZ,
    capi_scheduled_event_id  TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (instance_name, contact_key)
);
CREATE INDEX dialog_analysis_direction_last_idx ON dialog_analysis (direction_id, last_message);
CREATE INDEX dialog_analysis_lid_idx ON dialog_analysis (instance_name, contact_lid) WHERE contact_lid IS NOT NULL;
CREATE INDEX dialog_analysis_lead_idx ON dialog_analysis (lead_id);

CREATE FUNCTION dialog_analysis_fill_direction() RETURNS trigger AS $$
BEGIN
    -- Cheap (unique index); refreshed while unknown, so a dialog picks up its
    -- direction once the instance is mapped.
    IF TG_OP = 'INSERT'
       OR NEW.direction_id IS NULL
       OR NEW.instance_name IS DISTINCT FROM OLD.instance_name THEN
        SELECT w.direction_id INTO NEW.direction_id
        FROM whatsapp_phone_numbers w
        WHERE w.instance_name = NEW.instance_name;
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER dialog_analysis_direction
    BEFORE INSERT OR UPDATE ON dialog_analysis
    FOR EACH ROW EXECUTE FUNCTION dialog_analysis_fill_direction();

-- Every WhatsApp message, incoming (customer) and outgoing (business).
CREATE TABLE dialog_messages (
    id             BIGSERIAL PRIMARY KEY,
    dialog_id      UUID NOT NULL REFERENCES dialog_analysis(id) ON DELETE CASCADE,
    instance_name  TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    from_me        BOOLEAN NOT NULL,
    -- customer | operator (business phone) | bot
    author         TEXT NOT NULL CHECK (author IN ('customer', 'operator', 'bot')),
    text           TEXT,
    message_type   TEXT,
    sent_at        TIMESTAMPTZ NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Evolution retries and duplicates webhooks: one row per message.
    UNIQUE (instance_name, message_id, from_me)
);
CREATE INDEX dialog_messages_dialog_idx ON dialog_messages (dialog_id, sent_at);

-- CAPI ------------------------------------------------------------------

-- A level claimed for a dialog: at most one row per (dialog, level), so two
-- replicas deciding at once cannot both queue an event.
CREATE TABLE capi_deliveries (
    id            BIGSERIAL PRIMARY KEY,
    dialog_id     UUID NOT NULL REFERENCES dialog_analysis(id) ON DELETE CASCADE,
    event_level   SMALLINT NOT NULL CHECK (event_level BETWEEN 1 AND 3),
    event_id      TEXT NOT NULL UNIQUE,
    event_time    TIMESTAMPTZ NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'success', 'error', 'skipped')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    -- A sender holds the lease while a request to Meta is in flight.
    lease_until   TIMESTAMPTZ,
    claimed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    UNIQUE (dialog_id, event_level)
);
CREATE INDEX capi_deliveries_pending_idx ON capi_deliveries (claimed_at) WHERE status = 'pending';

-- Every attempt to send an event, with what Meta answered. Never holds a token.
CREATE TABLE capi_events_log (
    id             BIGSERIAL PRIMARY KEY,
    dialog_id      UUID REFERENCES dialog_analysis(id) ON DELETE SET NULL,
    direction_id   UUID REFERENCES account_directions(id) ON DELETE SET NULL,
    user_account_id UUID REFERENCES user_accounts(id) ON DELETE SET NULL,
    event_level    SMALLINT NOT NULL,
    event_name     TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    pixel_id       TEXT,
    status         TEXT NOT NULL CHECK (status IN ('success', 'error', 'skipped')),
    attempt        INTEGER NOT NULL DEFAULT 1,
    reason         TEXT,
    request        JSONB,
    response       JSONB,
    http_status    INTEGER,
    error_message  TEXT,
    duration_ms    INTEGER,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX capi_events_log_dialog_idx ON capi_events_log (dialog_id, event_level);
CREATE INDEX capi_events_log_account_time_idx ON capi_events_log (user_account_id, created_at);

-- Reports ---------------------------------------------------------------

CREATE TABLE conversation_reports (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_account_id    UUID NOT NULL REFERENCES user_accounts(id) ON DELETE CASCADE,
    report_date        DATE NOT NULL,
    report_text        TEXT NOT NULL,
    stats              JSONB NOT NULL DEFAULT '{}'::jsonb,
    directions_data    JSONB NOT NULL DEFAULT '[]'::jsonb,
    -- Legacy single-direction fields, kept for old reports.
    capi_distribution  JSONB,
    capi_source_used   BOOLEAN,
    capi_direction_id  UUID REFERENCES account_directions(id) ON DELETE SET NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_account_id, report_date)
);

CREATE TABLE ad_spend (
    id             BIGSERIAL PRIMARY KEY,
    ad_account_id  UUID NOT NULL REFERENCES ad_accounts(id) ON DELETE CASCADE,
    spend_date     DATE NOT NULL,
    spend          NUMERIC(14, 2) NOT NULL,
    currency       TEXT NOT NULL,
    synced_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (ad_account_id, spend_date)
);

-- Transactional outbox: written in the same transaction as the change it
-- announces, published to RabbitMQ (with confirms) by a relay.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    message_id    UUID NOT NULL UNIQUE,
    routing_key   TEXT NOT NULL,
    payload       JSONB NOT NULL,
    -- Set for a delayed publish (e.g. the buffer flush).
    delay_ms      BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
