ALTER TABLE capi_deliveries DROP COLUMN sending_at, DROP COLUMN sending_by;
