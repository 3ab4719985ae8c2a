DROP TABLE llm_usage_daily;
DROP TABLE qualification_runs;
ALTER TABLE dialog_analysis
    DROP COLUMN analyzed_message_id,
    DROP COLUMN analysis_status,
    DROP COLUMN llm_calls,
    DROP COLUMN llm_prompt_tokens,
    DROP COLUMN llm_completion_tokens;
