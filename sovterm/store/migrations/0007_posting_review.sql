-- A posting flagged for review (a customer overpaid, BTCPay settled below the price) stays on the
-- review list until someone has looked at it; who and when are kept with it (and in the audit trail).
ALTER TABLE sync_postings ADD COLUMN reviewed_at INTEGER;
ALTER TABLE sync_postings ADD COLUMN reviewed_by TEXT;
