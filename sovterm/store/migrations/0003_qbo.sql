-- QuickBooks Online: OAuth states, connected companies, per-store account mappings.

-- A `state` handed to Intuit's authorize page; consumed (deleted) by the callback, so single use.
CREATE TABLE qbo_oauth_states (
    state        TEXT PRIMARY KEY,
    environment  TEXT NOT NULL,           -- the key set the flow was started with
    redirect_uri TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);

-- One row per company; tokens are in `secrets` as qbo:tokens:<realm_id>.
CREATE TABLE qbo_connections (
    realm_id                TEXT PRIMARY KEY,
    environment             TEXT NOT NULL CHECK (environment IN ('sandbox', 'production')),
    sandbox                 INTEGER NOT NULL,          -- 1 for a sandbox company
    auto_sync               INTEGER NOT NULL DEFAULT 0, -- the sync loop posts only when 1
    status                  TEXT NOT NULL CHECK (status IN ('connected', 'reconnect_required', 'disconnected')),
    status_reason           TEXT,
    access_expires_at       INTEGER NOT NULL,
    refresh_expires_at      INTEGER NOT NULL,          -- rolling 100-day life
    refresh_hard_expires_at INTEGER,                   -- Intuit's 5-year end of life, when reported
    refresh_started_at      INTEGER,                   -- set while a refresh is in flight (diagnosis)
    connected_at            INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);

-- How one BTCPay store posts into one company (QBO ids; names kept for display only).
CREATE TABLE qbo_mappings (
    store_id            TEXT PRIMARY KEY,
    realm_id            TEXT NOT NULL,
    deposit_account_id  TEXT NOT NULL,
    income_account_id   TEXT NOT NULL,
    item_id             TEXT NOT NULL,
    fee_account_id      TEXT NOT NULL,
    payment_method_id   TEXT,
    customer_id         TEXT,
    class_id            TEXT,
    tax_code_id         TEXT,
    names               TEXT NOT NULL DEFAULT '{}',    -- JSON {field: display name}
    updated_at          INTEGER NOT NULL
);
