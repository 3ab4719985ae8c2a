-- LLM qualification (levels 2 and 3) for WhatsApp directions.

-- The newest customer message the last analysis read: no new customer
-- message since, no new analysis. Plus what the dialog's analyses cost.
ALTER TABLE dialog_analysis
    ADD COLUMN analyzed_message_id   BIGINT,
    ADD COLUMN analysis_status       TEXT CHECK (analysis_status IN ('ok', 'error')),
    ADD COLUMN llm_calls             INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN llm_prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN llm_completion_tokens BIGINT NOT NULL DEFAULT 0;

-- Every analysis, for audit: what the model was shown (up to which
-- message), what it answered, what it cost, and any error.
CREATE TABLE qualification_runs (
    id                 BIGSERIAL PRIMARY KEY,
    dialog_id          UUID NOT NULL REFERENCES dialog_analysis(id) ON DELETE CASCADE,
    direction_id       UUID REFERENCES account_directions(id) ON DELETE SET NULL,
    through_message_id BIGINT NOT NULL,
    model              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    error              TEXT,
    result             JSONB,
    -- The level the analysis reached (2 or 3), if any.
    reached_level      SMALLINT,
    llm_calls          INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    duration_ms        INTEGER,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX qualification_runs_dialog_idx ON qualification_runs (dialog_id, id);

-- Model usage per direction and day (UTC), by purpose, so cost is visible
-- without scanning the runs.
CREATE TABLE llm_usage_daily (
    direction_id      UUID NOT NULL REFERENCES account_directions(id) ON DELETE CASCADE,
    day               DATE NOT NULL,
    purpose           TEXT NOT NULL CHECK (purpose IN ('qualification', 'reply', 'onboarding')),
    calls             BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (direction_id, day, purpose)
);
