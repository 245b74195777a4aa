-- #15: a rollback takes back remeasurement JournalEntries too. A rolled-back entry stays as a row (status
-- voided, with why) and its period is posted again under the next `seq`, a new marker; the CHECK on status
-- and the primary key change, so the table is rebuilt (SQLite cannot alter either in place).
CREATE TABLE books_remeasurements_new (
    account_id      TEXT NOT NULL,                  -- the QuickBooks bitcoin asset account
    period          TEXT NOT NULL,                  -- YYYY-MM-DD: the reporting date (as of)
    seq             INTEGER NOT NULL DEFAULT 0,     -- 0, then 1, 2… each time the period is posted again
    amount          TEXT NOT NULL,                  -- signed, home currency: + a gain (debit the asset)
    currency        TEXT NOT NULL,
    rate            TEXT NOT NULL,
    source          TEXT NOT NULL,
    sats            INTEGER NOT NULL,
    marker          TEXT NOT NULL UNIQUE,
    request_id      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'posted', 'voiding', 'voided')),
    qbo_id          TEXT,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    posted_at       INTEGER,
    void_reason     TEXT,                           -- voided: "rolled back by USER (rollback #N, FROM to TO)"
    PRIMARY KEY (account_id, period, seq)
);
INSERT INTO books_remeasurements_new(account_id, period, seq, amount, currency, rate, source, sats, marker,
                                     request_id, body, status, qbo_id, created_by, created_at, posted_at)
    SELECT account_id, period, 0, amount, currency, rate, source, sats, marker, request_id, body, status, qbo_id,
           created_by, created_at, posted_at FROM books_remeasurements;
DROP TABLE books_remeasurements;
ALTER TABLE books_remeasurements_new RENAME TO books_remeasurements;
