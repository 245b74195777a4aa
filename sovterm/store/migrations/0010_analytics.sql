-- BTCPay Crowdfund apps of the followed stores, and which invoices belong to each. BTCPay tags a
-- campaign's invoices with a search term (`crowdfund-app_<appId>`) that invoices do not carry in the API,
-- so membership is read with `textSearch` and kept here; new contributions are also recognised at once by
-- their `metadata.orderUrl` (see sovterm/analytics/campaigns.py).

CREATE TABLE crowdfund_apps (
    app_id          TEXT PRIMARY KEY,
    store_id        TEXT NOT NULL,
    title           TEXT NOT NULL DEFAULT '',
    settings        TEXT NOT NULL DEFAULT '{}',     -- JSON; money as exact decimal strings
    refreshed_at    INTEGER NOT NULL
);
CREATE INDEX crowdfund_apps_store ON crowdfund_apps(store_id);

CREATE TABLE crowdfund_invoices (
    app_id          TEXT NOT NULL REFERENCES crowdfund_apps(app_id) ON DELETE CASCADE,
    store_id        TEXT NOT NULL,
    invoice_id      TEXT NOT NULL,
    PRIMARY KEY (app_id, invoice_id)
);
