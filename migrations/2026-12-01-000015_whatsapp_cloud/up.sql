-- WhatsApp numbers on Meta's Cloud API (issue 15). A Cloud number is a row
-- of whatsapp_phone_numbers like an Evolution instance, named
-- 'cloud-<phone_number_id>', so dialogs, directions, the bot and reports
-- treat both alike. Its webhook_secret is unused (Meta signs its webhooks
-- with the app secret) and stays empty, which never matches.
ALTER TABLE whatsapp_phone_numbers
    ADD COLUMN channel TEXT NOT NULL DEFAULT 'evolution'
        CHECK (channel IN ('evolution', 'cloud_api')),
    -- metadata.phone_number_id of the number's webhooks.
    ADD COLUMN phone_number_id TEXT UNIQUE,
    -- entry[].id of the number's webhooks: sent as the events'
    -- user_data.whatsapp_business_account_id (before the direction's own).
    ADD COLUMN waba_id TEXT,
    -- The system-user token the bot sends replies with.
    ADD COLUMN cloud_access_token TEXT;

COMMENT ON COLUMN dialog_analysis.contact_lid IS
    'The contact''s id other than the phone: WhatsApp''s LID (Evolution API) or the business-scoped user id (Cloud API).';
