-- The bot's answers (chatbot-service).

-- The bot can be switched off per instance as well as per direction.
ALTER TABLE whatsapp_phone_numbers ADD COLUMN bot_enabled BOOLEAN NOT NULL DEFAULT true;

-- For an outgoing message: milliseconds from the first customer message it
-- answered (the oldest unanswered one) to the reply.
ALTER TABLE dialog_messages ADD COLUMN response_ms INTEGER;

-- One row per buffered burst (dialog, buffer seq): what the bot decided and
-- did. The model's answer is kept before it is sent, so a retry after an
-- Evolution API failure sends the same text without asking the model again.
CREATE TABLE bot_replies (
    id                BIGSERIAL PRIMARY KEY,
    dialog_id         UUID NOT NULL REFERENCES dialog_analysis(id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'generated', 'sent', 'skipped', 'failed')),
    reason            TEXT,
    reply_text        TEXT,
    message_id        TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    response_ms       INTEGER,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (dialog_id, seq)
);
