DROP TABLE crm_request_pace;
ALTER TABLE crm_connections
    DROP COLUMN refresh_token,
    DROP COLUMN token_expires_at,
    DROP COLUMN oauth_client_id,
    DROP COLUMN oauth_client_secret,
    DROP COLUMN oauth_redirect_uri,
    DROP COLUMN token_refreshed_at;
