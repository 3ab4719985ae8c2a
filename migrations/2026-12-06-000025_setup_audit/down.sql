DROP TABLE crm_oauth_states;
DROP TABLE setup_changes;
ALTER TABLE dashboard_sessions DROP COLUMN role, DROP COLUMN link_id;
