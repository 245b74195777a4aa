-- The sync queue and the postings ledger (written by the sync part).
-- Money: exact decimals as TEXT, never REAL. Times: unix seconds (REAL only for lease/backoff clocks).

-- One row per accounting consequence still to work out; written in the transaction of its cause.
CREATE TABLE sync_jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,                  -- reconcile | backfill
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,                  -- jobs of one invoice run in order, one at a time
    payload         TEXT NOT NULL DEFAULT '{}',     -- JSON: what caused it
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead', 'held')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_run_at     REAL NOT NULL,
    lease_owner     TEXT,
    lease_until     REAL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- at most one waiting job per invoice and kind: a second event for the same invoice adds nothing
CREATE UNIQUE INDEX sync_jobs_one_waiting ON sync_jobs(store_id, invoice_id, kind) WHERE state = 'queued';
CREATE INDEX sync_jobs_claim ON sync_jobs(state, next_run_at);
CREATE INDEX sync_jobs_invoice ON sync_jobs(store_id, invoice_id, state);

-- Every QuickBooks document sovterm means to write, before it is written (exactly once).
CREATE TABLE sync_postings (
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    kind            TEXT NOT NULL,                  -- sale | payment | refund
    seq             INTEGER NOT NULL,               -- 0, 1, ...: a change posts the difference as seq+1
    entity          TEXT NOT NULL,                  -- SalesReceipt | Deposit | Payment | RefundReceipt
    amount          TEXT NOT NULL,                  -- fiat, exact decimal, document currency
    currency        TEXT NOT NULL,
    ref             TEXT,                           -- refunds: the BTCPay pull payment id
    marker          TEXT NOT NULL UNIQUE,           -- DocNumber written into the document
    request_id      TEXT NOT NULL,
    body            TEXT NOT NULL,                  -- the exact request body (a retry resends it unchanged)
    status          TEXT NOT NULL CHECK (status IN ('pending', 'posted', 'voiding', 'voided')),
    qbo_id          TEXT,
    sync_token      TEXT,
    txn_date        TEXT NOT NULL,                  -- YYYY-MM-DD
    review          TEXT,                           -- why an accountant should look at it (overpayment...)
    void_reason     TEXT,
    created_at      INTEGER NOT NULL,
    posted_at       INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (store_id, invoice_id, kind, seq)
);
CREATE INDEX sync_postings_status ON sync_postings(status);
CREATE INDEX sync_postings_posted ON sync_postings(posted_at);

-- Refunds BTCPay told us about (InvoiceRefund → pull payment); amount filled once read.
CREATE TABLE sync_refunds (
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    pull_payment_id TEXT NOT NULL,
    currency        TEXT,                           -- the pull payment's currency (BTC or fiat)
    amount          TEXT,                           -- exact decimal in `currency`
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (store_id, invoice_id, pull_payment_id)
);

-- Invoicing-mode invoices that match no QuickBooks invoice, and the operator's decisions.
CREATE TABLE sync_unmatched (
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    reason          TEXT NOT NULL,
    amount          TEXT,
    currency        TEXT,
    created_at      INTEGER NOT NULL,
    resolution      TEXT,                           -- JSON {"qbo_invoice": ...} | {"as_deposit": true} | {"ignore": reason}
    resolved_by     TEXT,
    resolved_at     INTEGER,
    PRIMARY KEY (store_id, invoice_id)
);
