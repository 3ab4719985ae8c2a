COMMENT ON COLUMN dialog_analysis.contact_lid IS NULL;
DELETE FROM whatsapp_phone_numbers WHERE channel = 'cloud_api';
ALTER TABLE whatsapp_phone_numbers
    DROP COLUMN cloud_access_token,
    DROP COLUMN waba_id,
    DROP COLUMN phone_number_id,
    DROP COLUMN channel;
