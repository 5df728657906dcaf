DROP TABLE console_sessions;
DROP INDEX api_keys_tenant;
ALTER TABLE tenants DROP COLUMN deleted_at;
ALTER TABLE tenants DROP COLUMN suspended_at;
ALTER TABLE tenants DROP COLUMN limits;
ALTER TABLE api_keys DROP COLUMN last_used_at;
ALTER TABLE api_keys DROP COLUMN expires_at;
ALTER TABLE api_keys DROP COLUMN role;
ALTER TABLE api_keys DROP COLUMN name;
