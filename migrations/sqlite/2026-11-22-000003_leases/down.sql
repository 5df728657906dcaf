DROP TABLE bind_leases;
