-- #17: Cashu payments, notifications, trusted-mint health (ops).

-- Where Cashu (BTCNutServer) payments are deposited: ecash held at a mint is a claim on that mint, not
-- bitcoin in the store's wallet. NULL in mappings saved before sovterm recognised Cashu: such an invoice's
-- documents wait (held) until the operator maps it (`sovterm setup accounts --auto` or --cashu-account).
ALTER TABLE qbo_mappings ADD COLUMN cashu_account_id TEXT;

-- Cashu payments mirrored before sovterm knew the method were stored as "other".
UPDATE invoice_payment_methods SET payment_method = 'cashu' WHERE UPPER(payment_method_raw) = 'CASHU';
UPDATE invoice_payments SET payment_method = 'cashu' WHERE UPPER(payment_method_raw) = 'CASHU';

-- Notification destinations. The apprise URL (it carries tokens) is a secret: encrypted in `secrets` under
-- `notify.url.<name>`; this table keeps only what lists may show.
CREATE TABLE notify_destinations (
    name TEXT PRIMARY KEY,
    service TEXT NOT NULL,           -- the URL's scheme (ntfy, mailto, json, tgram...), never the URL
    min_severity TEXT NOT NULL DEFAULT 'warning',
    created_at INTEGER NOT NULL
);

-- Trusted Cashu mints and what their health checks saw (one row per change of state, trimmed per mint).
CREATE TABLE mints (
    url TEXT PRIMARY KEY,
    source TEXT NOT NULL DEFAULT 'operator',  -- operator | config | btcpay
    added_at INTEGER NOT NULL
);
CREATE TABLE mint_history (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    at INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX mint_history_url_at ON mint_history(url, at);
