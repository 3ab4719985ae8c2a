DROP TABLE bot_replies;
ALTER TABLE dialog_messages DROP COLUMN response_ms;
ALTER TABLE whatsapp_phone_numbers DROP COLUMN bot_enabled;
