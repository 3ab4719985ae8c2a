-- The bot answers a flushed burst in the process that flushed it, at once;
-- the queued `reply.due` stays as the durable path (a crash, a retry). A
-- lease on the reply keeps the two from answering at the same time, and the
-- tries are counted on the row, so the retry limit holds whichever path runs.
ALTER TABLE bot_replies
    ADD COLUMN lease_until TIMESTAMPTZ,
    ADD COLUMN attempts    INTEGER NOT NULL DEFAULT 0;

-- Every reply (and qualification run) adds to its direction's row for the
-- day: one row per (direction, day, purpose) made every writer wait for the
-- previous one's commit. The counters are split over a few rows (a writer
-- takes the one for its database connection); readers sum them.
ALTER TABLE llm_usage_daily ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE llm_usage_daily DROP CONSTRAINT llm_usage_daily_pkey;
ALTER TABLE llm_usage_daily ADD PRIMARY KEY (direction_id, day, purpose, shard);
