-- The bitcoin wallet beyond invoice payments and payouts (written by the sync part): the network fee each
-- payout transaction paid (miner fee on-chain, routing fee on Lightning), and wallet transactions no
-- document explained that the operator booked by hand (`sovterm reconcile book`).
-- One row per transaction and kind: a transaction paying several payouts has its fee once.
CREATE TABLE wallet_entries (
    store_id        TEXT NOT NULL,
    reference       TEXT NOT NULL,                  -- on-chain txid, or Lightning payment hash
    kind            TEXT NOT NULL CHECK (kind IN ('fee', 'booked')),
    sats            INTEGER,                        -- the wallet's change (a fee is negative); NULL: fee unknown
    account_id      TEXT,                           -- booked: the QuickBooks account on the other side
    note            TEXT,                           -- which payouts the fee was for, or why it is unknown
    happened_at     INTEGER,                        -- booked: when the transaction happened (unix s)
    created_by      TEXT,                           -- booked: who
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (store_id, reference, kind)
);
