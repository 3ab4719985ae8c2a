-- A delivery's request is about to leave for Meta: when and by which sender
-- process. Set in the same statement that checks the lease (fencing), cleared
-- when an answer or a hand-back is recorded. A pending delivery that still
-- carries it was in a request whose outcome nobody recorded (its sender
-- died): the one window in which Meta may receive an event twice.
ALTER TABLE capi_deliveries
  ADD COLUMN sending_at timestamptz,
  ADD COLUMN sending_by text;
