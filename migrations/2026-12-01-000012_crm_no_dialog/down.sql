ALTER TABLE account_directions DROP COLUMN capi_crm_no_dialog;
