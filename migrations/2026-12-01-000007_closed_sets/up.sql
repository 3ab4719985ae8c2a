-- Closed sets the code maps to enums (domain::text_enum!) are checked by
-- the database too: the two columns that were still free text or numbers.
ALTER TABLE dialog_analysis ADD CONSTRAINT dialog_analysis_funnel_stage_check
    CHECK (funnel_stage IN ('first_contact', 'interested', 'qualifying', 'qualified', 'scheduled', 'not_interested'));
ALTER TABLE capi_events_log ADD CONSTRAINT capi_events_log_event_level_check
    CHECK (event_level BETWEEN 1 AND 3);
ALTER TABLE qualification_runs ADD CONSTRAINT qualification_runs_reached_level_check
    CHECK (reached_level BETWEEN 1 AND 3);
