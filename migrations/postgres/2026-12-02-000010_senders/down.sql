DROP TABLE senders;
