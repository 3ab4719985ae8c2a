-- A CRM change finds its WhatsApp dialog by the contact's phone within the
-- direction (storage::conversations::dialog_by_phones).
CREATE INDEX dialog_analysis_direction_phone_idx ON dialog_analysis (direction_id, contact_phone);
