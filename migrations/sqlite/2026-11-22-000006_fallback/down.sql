DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE fallback_timers;
ALTER TABLE tenants DROP COLUMN callback_secret;
ALTER TABLE tenants DROP COLUMN defaults;
ALTER TABLE messages DROP COLUMN fallback;
ALTER TABLE messages DROP COLUMN plan;
