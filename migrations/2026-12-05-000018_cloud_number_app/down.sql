ALTER TABLE whatsapp_phone_numbers DROP COLUMN meta_app_id;
