CREATE INDEX capi_deliveries_pending_idx ON capi_deliveries (claimed_at) WHERE status = 'pending';
ALTER TABLE capi_deliveries RESET (fillfactor);
ALTER TABLE dialog_analysis RESET (fillfactor);
