DROP TABLE retention_marks;
ALTER TABLE dialog_messages RESET (fillfactor);
DROP INDEX dialog_messages_by_arrival_idx;
CREATE INDEX dialog_messages_texts_by_age_idx ON dialog_messages (instance_name, sent_at)
    WHERE text IS NOT NULL;
