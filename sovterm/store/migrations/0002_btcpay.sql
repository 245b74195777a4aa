-- BTCPay: stores we follow, the invoice ledger (latest snapshot per invoice), webhook intake.
-- Money: fiat and exact crypto amounts as TEXT decimals, satoshis as INTEGER; never REAL.

CREATE TABLE btcpay_stores (
    store_id        TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    selected        INTEGER NOT NULL DEFAULT 0,     -- 1 = sovterm syncs this store
    webhook_id      TEXT,                           -- our webhook at BTCPay (secret is in `secrets`)
    settings        TEXT NOT NULL DEFAULT '{}',     -- JSON: features enabled, default currency...
    updated_at      INTEGER NOT NULL
);

CREATE TABLE invoices (
    store_id            TEXT NOT NULL,
    invoice_id          TEXT NOT NULL,
    status              TEXT NOT NULL,              -- raw BTCPay status (unknown values kept)
    additional_status   TEXT NOT NULL DEFAULT 'None',
    invoice_type        TEXT,
    amount              TEXT,                       -- invoice amount, exact decimal; NULL = top-up
    paid_amount         TEXT,                       -- net paid in invoice currency (v2.1.2+)
    currency            TEXT,
    checkout_link       TEXT,
    order_id            TEXT,
    buyer_email         TEXT,
    item_desc           TEXT,
    qbo_ref             TEXT,                       -- metadata.qboInvoiceId set by pay links
    metadata            TEXT NOT NULL DEFAULT '{}', -- JSON
    archived            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,           -- BTCPay createdTime (unix s)
    expires_at          INTEGER,
    monitoring_expires_at INTEGER,
    paid_at             INTEGER,                    -- latest receivedDate of an accounted payment
    status_changed_at   INTEGER NOT NULL,           -- ms, our clock: when we first saw this status
    observed_at_ms      INTEGER NOT NULL,           -- snapshot version: when the read was sent
    snapshot_rank       INTEGER NOT NULL,           -- tie-break for equal observed_at_ms
    content_hash        TEXT NOT NULL,              -- to tell a changed snapshot from a re-read
    payment_methods_known INTEGER NOT NULL DEFAULT 0,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (store_id, invoice_id)
);
-- non-final invoices by store (the poller re-reads these)
CREATE INDEX invoices_open ON invoices(store_id, status) WHERE status NOT IN ('Settled', 'Invalid');
CREATE INDEX invoices_paid_at ON invoices(store_id, status, paid_at);
CREATE INDEX invoices_created ON invoices(store_id, created_at);
CREATE INDEX invoices_qbo_ref ON invoices(qbo_ref) WHERE qbo_ref IS NOT NULL;

CREATE TABLE invoice_payment_methods (
    store_id            TEXT NOT NULL,
    invoice_id          TEXT NOT NULL,
    payment_method_raw  TEXT NOT NULL,              -- as BTCPay sent it: BTC-CHAIN, BTC, BTC-LightningNetwork...
    payment_method      TEXT NOT NULL,              -- onchain | lightning | lnurl | other
    currency            TEXT NOT NULL,
    rate                TEXT,                       -- invoice currency per 1 unit, exact decimal
    amount              TEXT,                       -- exact decimal in `currency`
    amount_sats         INTEGER,                    -- only when currency = BTC
    paid                TEXT,
    paid_sats           INTEGER,
    due                 TEXT,                       -- negative if overpaid
    merchant_fee        TEXT,                       -- paymentMethodFee (not the miner fee)
    destination         TEXT,
    PRIMARY KEY (store_id, invoice_id, payment_method_raw),
    FOREIGN KEY (store_id, invoice_id) REFERENCES invoices(store_id, invoice_id) ON DELETE CASCADE
);

CREATE TABLE invoice_payments (
    store_id            TEXT NOT NULL,
    invoice_id          TEXT NOT NULL,
    payment_id          TEXT NOT NULL,              -- on-chain "<txid>-<vout>", Lightning payment hash
    payment_method_raw  TEXT NOT NULL,
    payment_method      TEXT NOT NULL,
    currency            TEXT NOT NULL,
    txid                TEXT,                       -- on-chain txid, or the Lightning payment hash
    amount              TEXT NOT NULL,              -- gross value, exact decimal in `currency`
    amount_sats         INTEGER,                    -- BTC only; Lightning msats rounded half-even
    fee                 TEXT NOT NULL DEFAULT '0',  -- BTCPay's per-payment fee (paymentMethodFee share)
    fee_sats            INTEGER,
    status              TEXT NOT NULL,
    destination         TEXT,
    received_at         INTEGER,
    PRIMARY KEY (store_id, invoice_id, payment_method_raw, payment_id),
    FOREIGN KEY (store_id, invoice_id) REFERENCES invoices(store_id, invoice_id) ON DELETE CASCADE
);
CREATE INDEX invoice_payments_txid ON invoice_payments(txid);

-- One row per BTCPay event (not per HTTP attempt): keyed by originalDeliveryId.
CREATE TABLE webhook_deliveries (
    dedupe_key          TEXT PRIMARY KEY,           -- originalDeliveryId, else deliveryId
    delivery_id         TEXT NOT NULL,              -- the attempt that got through first
    store_id            TEXT NOT NULL,
    webhook_id          TEXT,
    event_type          TEXT NOT NULL,
    invoice_id          TEXT,
    payout_id           TEXT,
    is_redelivery       INTEGER NOT NULL DEFAULT 0,
    event_timestamp     INTEGER,                    -- BTCPay's `timestamp`
    received_at         INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_store ON webhook_deliveries(store_id, received_at);
CREATE INDEX webhook_deliveries_invoice ON webhook_deliveries(invoice_id) WHERE invoice_id IS NOT NULL;

-- What we refused and why; never the body (it may be forged or hostile).
CREATE TABLE webhook_refusals (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    at                  INTEGER NOT NULL,
    reason              TEXT NOT NULL,
    http_status         INTEGER NOT NULL,
    store_id            TEXT,
    delivery_id         TEXT,
    body_bytes          INTEGER NOT NULL
);
CREATE INDEX webhook_refusals_at ON webhook_refusals(at);
