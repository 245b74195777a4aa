-- Daily summary mode (issue 15, point 1): what each BTCPay invoice contributed to a store's day summary.
-- An invoice job writes the difference between what the rules recognise now and what the invoice already
-- contributed, as new rows dated on the store-local day the money moved; the day's job binds the unbound
-- rows of a closed day to one QuickBooks document (`doc_seq`: the posting `day#seq` of `summary:<CUR>:<day>`,
-- -1 when they cancel out and no document is needed). Rows are never changed after that, so a later change
-- to a closed day becomes an adjustment document, never an edit of one already posted.
CREATE TABLE sync_summary_entries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    currency        TEXT NOT NULL,
    day             TEXT NOT NULL,                  -- YYYY-MM-DD in the store's time zone
    category        TEXT NOT NULL CHECK (category IN ('sale', 'fee', 'refund')),
    method          TEXT NOT NULL DEFAULT '',       -- sales: on-chain | Lightning | other
    ref             TEXT NOT NULL DEFAULT '',       -- refunds: the pull payment id
    amount          TEXT NOT NULL,                  -- signed fiat decimal (a refund is negative)
    sats            INTEGER NOT NULL DEFAULT 0,     -- sales: signed satoshis behind the amount
    review          TEXT,                           -- why someone should look (overpaid, below the price)
    doc_seq         INTEGER,                        -- NULL until bound to the day's document
    created_at      INTEGER NOT NULL
);
CREATE INDEX sync_summary_entries_invoice ON sync_summary_entries(store_id, invoice_id);
CREATE INDEX sync_summary_entries_day ON sync_summary_entries(store_id, currency, day, doc_seq);
