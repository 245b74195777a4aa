-- HTTP 402 for machines (#18, sovterm/paywall/).
-- Priced paths added with `sovterm paywall add` (those in the config file's [[paywall]] entries are not
-- stored): the entry as the config would hold it, validated by the same model.
CREATE TABLE paywall_resources (
    name            TEXT PRIMARY KEY,
    entry           TEXT NOT NULL,                  -- JSON of config.PaywallEntry
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL
);

-- What the gate answered, counted in memory and added here now and then: one row per resource and outcome
-- (challenge, paid, and each refusal reason), never a row per request (the listener is public).
CREATE TABLE paywall_counters (
    resource        TEXT NOT NULL,                  -- a priced path's name, or `pay-links`
    outcome         TEXT NOT NULL,
    count           INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (resource, outcome)
);

-- Sales per priced path (`paywall.sales`, the TUI's Paywall screen) without reading the whole ledger: the
-- gate's invoices carry orderId `paywall-<name>`.
CREATE INDEX invoices_paywall ON invoices(order_id, status) WHERE order_id LIKE 'paywall-%';
