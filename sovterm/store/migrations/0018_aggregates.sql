-- Per-day analytics aggregates (issue #16 point 7): a report over whole days reads these instead of every
-- invoice of its range. Days are those of `analytics_aggregate_state.zone` (the `analytics.timezone`
-- setting); sums of money are exact decimal strings, added in Python (SQLite's SUM would go through a
-- float). `analytics_invoice_facts` keeps what each invoice currently adds, so a change of status or of
-- payments takes the old contribution out before the new one goes in: an invoice moves between buckets,
-- it is never counted twice. See sovterm/analytics/aggregates.py.
--
-- The backfill of an existing ledger runs at the daemon's start, in Python and in chunks (a migration
-- cannot add decimal strings exactly, and one transaction over a million invoices would hold the write
-- lock for a minute); until it finishes (`ready` = 0) reports read the raw rows, as before.

CREATE TABLE analytics_aggregate_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    zone            TEXT NOT NULL,                  -- IANA zone whose days the rows below are
    ready           INTEGER NOT NULL DEFAULT 0      -- 1 once every invoice of the ledger is counted
);
INSERT INTO analytics_aggregate_state(id, zone, ready) VALUES (1, 'UTC', 0);

CREATE TABLE analytics_invoice_facts (
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    contribution    TEXT NOT NULL,                  -- JSON: the keys and amounts this invoice adds
    PRIMARY KEY (store_id, invoice_id)
) WITHOUT ROWID;

-- invoices by the day they were created, with their current status (counts and rates)
CREATE TABLE analytics_created_days (
    store_id        TEXT NOT NULL,
    day             TEXT NOT NULL,                  -- YYYY-MM-DD in the zone
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL,
    additional_status TEXT NOT NULL,
    invoices        INTEGER NOT NULL,
    PRIMARY KEY (day, store_id, currency, status, additional_status)
) WITHOUT ROWID;

-- settled invoices by the day the money arrived (volume, sats)
CREATE TABLE analytics_settled_days (
    store_id        TEXT NOT NULL,
    day             TEXT NOT NULL,
    currency        TEXT NOT NULL,
    invoices        INTEGER NOT NULL,
    volume          TEXT NOT NULL,                  -- exact decimal in `currency`
    exponents       TEXT NOT NULL,                  -- JSON {exponent: invoices}: the places `volume` is shown with
    sats            INTEGER NOT NULL,
    PRIMARY KEY (day, store_id, currency)
) WITHOUT ROWID;

-- settled invoices' payments by method ('marked': settled by hand, no payment)
CREATE TABLE analytics_method_days (
    store_id        TEXT NOT NULL,
    day             TEXT NOT NULL,
    currency        TEXT NOT NULL,
    method          TEXT NOT NULL,
    invoices        INTEGER NOT NULL,
    payments        INTEGER NOT NULL,
    sats            INTEGER NOT NULL,
    volume          TEXT NOT NULL,
    PRIMARY KEY (day, store_id, currency, method)
) WITHOUT ROWID;

-- settled invoices by item
CREATE TABLE analytics_item_days (
    store_id        TEXT NOT NULL,
    day             TEXT NOT NULL,
    currency        TEXT NOT NULL,
    item            TEXT NOT NULL,
    invoices        INTEGER NOT NULL,
    volume          TEXT NOT NULL,
    PRIMARY KEY (day, store_id, currency, item)
) WITHOUT ROWID;

-- A Crowdfund app's own place in the books (a donation campaign is not sales): its contributions post to
-- this income account (through `item_id`, a Service item on that account, where the store books sales as
-- SalesReceipts) with this class, over the store's mapping. Set with `sovterm crowdfund books APP`.
CREATE TABLE crowdfund_books (
    app_id              TEXT PRIMARY KEY,
    store_id            TEXT NOT NULL,
    income_account_id   TEXT NOT NULL,
    item_id             TEXT NOT NULL,
    class_id            TEXT,
    names               TEXT NOT NULL DEFAULT '{}',   -- JSON: display names of the entries above
    updated_at          INTEGER NOT NULL
);
