-- What a crm direction does when a CRM entity reaches a level but no
-- WhatsApp dialog of the direction has the contact's phone: `skip` (record
-- it as skipped with reason no_dialog), or `phone_only` (send the event
-- with the hashed phone only, no click id).
ALTER TABLE account_directions
    ADD COLUMN capi_crm_no_dialog TEXT NOT NULL DEFAULT 'skip'
        CHECK (capi_crm_no_dialog IN ('skip', 'phone_only'));
