-- Rollback (#15 point 5) and fair value of the bitcoin held (#15 point 6).

-- A rollback of every document sovterm posted for invoices in a date range: the plan is written before
-- anything is voided, so a crash in the middle resumes where it stopped (at start, or on the next call).
CREATE TABLE sync_rollbacks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    date_from       TEXT NOT NULL,                  -- YYYY-MM-DD, the documents' TxnDate
    date_to         TEXT NOT NULL,
    store_id        TEXT,                           -- NULL: every store
    state           TEXT NOT NULL CHECK (state IN ('running', 'done')),
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    last_error      TEXT
);
-- one rollback at a time: a second waits until the first is finished
CREATE UNIQUE INDEX sync_rollbacks_one_running ON sync_rollbacks(state) WHERE state = 'running';

-- Each document of a rollback and how far it got: listed → done (voided or deleted, invoice requeued), or
-- refused (QuickBooks would not void it, e.g. a closed period or a deposited receipt: it stays, with why).
CREATE TABLE sync_rollback_items (
    rollback_id     INTEGER NOT NULL REFERENCES sync_rollbacks(id),
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    entity          TEXT NOT NULL,
    qbo_id          TEXT,
    amount          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    txn_date        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('listed', 'done', 'refused')),
    error           TEXT,                           -- refused: QuickBooks' words
    PRIMARY KEY (rollback_id, store_id, invoice_id, kind, seq)
);

-- The store's BTCPay rate (GET /api/v1/stores/{id}/rates), recorded once a day per currency pair.
CREATE TABLE books_rates (
    store_id        TEXT NOT NULL,
    day             TEXT NOT NULL,                  -- YYYY-MM-DD (UTC)
    currency        TEXT NOT NULL,                  -- fiat per one BTC
    rate            TEXT NOT NULL,                  -- exact decimal
    source          TEXT NOT NULL,                  -- where it came from, quoted in the memo
    fetched_at      INTEGER NOT NULL,
    PRIMARY KEY (store_id, currency, day)
);

-- Remeasurement JournalEntries: one per bitcoin account and period, the intent committed before the call
-- (marker, exact body, requestid), the QuickBooks id after it: exactly once, like sync_postings.
CREATE TABLE books_remeasurements (
    account_id      TEXT NOT NULL,                  -- the QuickBooks bitcoin asset account
    period          TEXT NOT NULL,                  -- YYYY-MM-DD: the reporting date (as of)
    amount          TEXT NOT NULL,                  -- signed, home currency: + a gain (debit the asset)
    currency        TEXT NOT NULL,
    rate            TEXT NOT NULL,
    source          TEXT NOT NULL,
    sats            INTEGER NOT NULL,
    marker          TEXT NOT NULL UNIQUE,
    request_id      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'posted')),
    qbo_id          TEXT,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    posted_at       INTEGER,
    PRIMARY KEY (account_id, period)
);
