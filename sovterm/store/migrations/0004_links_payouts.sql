-- Pay links, reservations, payout mirror and approvals (written by the links/payouts part).
-- Money: fiat and exact crypto amounts as TEXT decimals, satoshis as INTEGER; never REAL.

-- One row per signed link; the token itself is not stored (it is rebuilt from these fields and the key).
CREATE TABLE pay_links (
    link_id         TEXT PRIMARY KEY,               -- random, named in the token
    kind            TEXT NOT NULL CHECK (kind IN ('qbo', 'fixed')),
    store_id        TEXT NOT NULL,                  -- the BTCPay store its invoices are created in
    qbo_invoice_id  TEXT,                           -- kind = qbo
    qbo_doc_number  TEXT,
    amount          TEXT,                           -- kind = fixed: exact decimal
    currency        TEXT,
    memo            TEXT,
    kid             TEXT NOT NULL,                  -- signing key id
    state           TEXT NOT NULL DEFAULT 'active', -- active | expired (by time or operator) | paid (fixed links)
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    ended_at        INTEGER,                        -- when state left 'active'
    CHECK (kind != 'qbo' OR qbo_invoice_id IS NOT NULL),
    CHECK (kind != 'fixed' OR (amount IS NOT NULL AND currency IS NOT NULL))
);
CREATE INDEX pay_links_qbo ON pay_links(qbo_invoice_id) WHERE qbo_invoice_id IS NOT NULL;
CREATE INDEX pay_links_active ON pay_links(state, expires_at);

-- The BTCPay invoice a click created. At most one open reservation per link (the partial unique
-- index), so two clicks can never both create an invoice; closed rows stay as history.
CREATE TABLE link_reservations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    link_id             TEXT NOT NULL REFERENCES pay_links(link_id),
    store_id            TEXT NOT NULL,
    btcpay_invoice_id   TEXT NOT NULL,
    checkout_link       TEXT NOT NULL,
    amount              TEXT NOT NULL,              -- exact decimal, in `currency`
    currency            TEXT NOT NULL,
    state               TEXT NOT NULL,              -- open | processing | settled | expired
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,           -- the BTCPay invoice's expirationTime
    closed_at           INTEGER
);
CREATE UNIQUE INDEX link_reservations_one_open ON link_reservations(link_id)
    WHERE state IN ('open', 'processing');
CREATE INDEX link_reservations_invoice ON link_reservations(store_id, btcpay_invoice_id);

-- Mirror of the selected stores' BTCPay payouts (poll + payout webhooks).
CREATE TABLE payouts (
    store_id            TEXT NOT NULL,
    payout_id           TEXT NOT NULL,
    state               TEXT NOT NULL,              -- raw BTCPay state (unknown values kept)
    revision            INTEGER NOT NULL,
    original_amount     TEXT,                       -- exact decimal in original_currency
    original_currency   TEXT,
    payout_amount       TEXT,                       -- exact decimal in payout_currency; NULL until approved
    payout_currency     TEXT,
    amount_sats         INTEGER,                    -- satoshis when known (BTC amounts), else NULL
    payment_method      TEXT,
    destination         TEXT,
    pull_payment_id     TEXT,
    pull_payment_name   TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}', -- JSON
    created_at          INTEGER,                    -- BTCPay `date`
    completed_at        INTEGER,                    -- when the mirror first saw Completed
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (store_id, payout_id)
);
CREATE INDEX payouts_state ON payouts(state);

-- Four eyes: a first admin's approval of a large payout, waiting for a second, different admin.
CREATE TABLE payout_approvals (
    store_id        TEXT NOT NULL,
    payout_id       TEXT NOT NULL,
    revision        INTEGER NOT NULL,               -- the revision the first admin approved
    approved_by     TEXT NOT NULL,
    approved_at     INTEGER NOT NULL,
    PRIMARY KEY (store_id, payout_id)
);
