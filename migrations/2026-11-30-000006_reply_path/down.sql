CREATE TABLE llm_usage_daily_merged AS
    SELECT direction_id, day, purpose, sum(calls)::bigint AS calls,
           sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens
    FROM llm_usage_daily GROUP BY direction_id, day, purpose;
DELETE FROM llm_usage_daily;
ALTER TABLE llm_usage_daily DROP CONSTRAINT llm_usage_daily_pkey;
ALTER TABLE llm_usage_daily DROP COLUMN shard;
ALTER TABLE llm_usage_daily ADD PRIMARY KEY (direction_id, day, purpose);
INSERT INTO llm_usage_daily SELECT * FROM llm_usage_daily_merged;
DROP TABLE llm_usage_daily_merged;
ALTER TABLE bot_replies DROP COLUMN lease_until, DROP COLUMN attempts;
