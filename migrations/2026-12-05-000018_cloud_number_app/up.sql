-- The Meta app whose secret signs a Cloud API number's webhooks: a webhook
-- for the number signed by another configured app is refused.
ALTER TABLE whatsapp_phone_numbers ADD COLUMN meta_app_id text;
