-- Bookkeeping depth (#15): items, sales tax, class and location.
-- Location (QuickBooks Department) per store, beside the class the mapping already had.
ALTER TABLE qbo_mappings ADD COLUMN department_id TEXT;

-- BTCPay items (PoS cart item ids, `itemCode`, or the title when there is no code) and the QuickBooks Item
-- each posts to. An unknown item gets a row with no item id: the store's policy decides (default item,
-- create it, or hold the posting until the operator maps it); held postings name the code and wait.
CREATE TABLE sync_items (
    store_id        TEXT NOT NULL,
    code            TEXT NOT NULL,
    title           TEXT,
    qbo_item_id     TEXT,                           -- NULL: not mapped (yet)
    qbo_name        TEXT,
    tax_code_id     TEXT,                           -- non-US companies: this item's tax code (else the store's)
    how             TEXT,                           -- sku | name | created | operator | default
    waiting         INTEGER NOT NULL DEFAULT 0,     -- postings held for this item (policy `hold`)
    looked_up_at    INTEGER,                        -- last QuickBooks look-up by SKU/name (unmapped rows)
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (store_id, code)
);

-- Class and location of one pay link (its invoices' documents), over the store's.
CREATE TABLE sync_link_dimensions (
    link_id         TEXT PRIMARY KEY,
    class_id        TEXT,
    department_id   TEXT,
    names           TEXT NOT NULL DEFAULT '{}',
    updated_at      INTEGER NOT NULL
);
