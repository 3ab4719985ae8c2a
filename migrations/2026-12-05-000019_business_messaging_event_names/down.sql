UPDATE account_directions SET event_name_interest = event_name_interest_other WHERE event_name_interest = 'LeadSubmitted';
UPDATE account_directions SET event_name_qualified = event_name_qualified_other WHERE event_name_qualified = 'QualifiedLead';
UPDATE account_directions SET event_name_scheduled = event_name_scheduled_other WHERE event_name_scheduled = 'OrderCreated';
ALTER TABLE account_directions
    ALTER COLUMN event_name_interest SET DEFAULT 'Lead',
    ALTER COLUMN event_name_qualified SET DEFAULT 'CompleteRegistration',
    ALTER COLUMN event_name_scheduled SET DEFAULT 'Schedule',
    DROP COLUMN event_name_interest_other,
    DROP COLUMN event_name_qualified_other,
    DROP COLUMN event_name_scheduled_other;
