DROP TABLE crm_changes;
ALTER TABLE crm_connections
    DROP COLUMN application_token,
    DROP COLUMN member_id,
    DROP COLUMN account_id,
    DROP COLUMN account_subdomain;
