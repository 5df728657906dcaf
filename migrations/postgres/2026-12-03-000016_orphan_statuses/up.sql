-- A provider id may have several kept receipts (DELIVERED, then READ, both before the
-- submit response was stored): one row per status, not one per id.
ALTER TABLE orphan_receipts DROP CONSTRAINT orphan_receipts_pkey;
ALTER TABLE orphan_receipts ADD PRIMARY KEY (provider_id, status);
