DROP TABLE app_inbox;
DROP TABLE devices;
