ALTER TABLE crm_changes DROP COLUMN outcome;
