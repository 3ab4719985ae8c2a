-- What evaluating a CRM change found (per direction: the levels reached,
-- the dialog joined or why none, the levels claimed), for operators.
ALTER TABLE crm_changes ADD COLUMN outcome JSONB;
