-- Meta refuses Lead, CompleteRegistration and Schedule on events sent with
-- action_source business_messaging (those with a click id: subcode 2804066);
-- only the names of its Business Messaging list pass there. A level now has
-- a name per action source: event_name_* with a click id, event_name_*_other
-- without one.
ALTER TABLE account_directions
    ADD COLUMN event_name_interest_other  TEXT NOT NULL DEFAULT 'Lead',
    ADD COLUMN event_name_qualified_other TEXT NOT NULL DEFAULT 'CompleteRegistration',
    ADD COLUMN event_name_scheduled_other TEXT NOT NULL DEFAULT 'Schedule';

-- Without a click id a direction keeps the names it had.
UPDATE account_directions SET
    event_name_interest_other  = event_name_interest,
    event_name_qualified_other = event_name_qualified,
    event_name_scheduled_other = event_name_scheduled;

-- With one, the old defaults move to names on Meta's list (`capi migrate`
-- counts them and says so); a custom name off the list stays, and
-- `capi doctor` reports it.
UPDATE account_directions SET event_name_interest = 'LeadSubmitted' WHERE event_name_interest = 'Lead';
UPDATE account_directions SET event_name_qualified = 'QualifiedLead' WHERE event_name_qualified = 'CompleteRegistration';
UPDATE account_directions SET event_name_scheduled = 'OrderCreated' WHERE event_name_scheduled = 'Schedule';

ALTER TABLE account_directions
    ALTER COLUMN event_name_interest SET DEFAULT 'LeadSubmitted',
    ALTER COLUMN event_name_qualified SET DEFAULT 'QualifiedLead',
    ALTER COLUMN event_name_scheduled SET DEFAULT 'OrderCreated';
