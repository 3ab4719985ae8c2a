DROP TABLE dashboard_sessions;
DROP TABLE dashboard_sign_ins;
ALTER TABLE user_accounts DROP COLUMN dashboard_generation;
