DELETE FROM orphan_receipts a USING orphan_receipts b
    WHERE a.provider_id = b.provider_id AND (a.received_at, a.status) > (b.received_at, b.status);
ALTER TABLE orphan_receipts DROP CONSTRAINT orphan_receipts_pkey;
ALTER TABLE orphan_receipts ADD PRIMARY KEY (provider_id);
