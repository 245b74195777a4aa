-- Refused webhooks in bounded form (#19): `webhook_refusals` becomes a ring of the most recent
-- refusals (trimmed on every insert, untrusted fields truncated, now with the client's address), and
-- the full count lives in `webhook_refusal_counts`, one row per hour, store and reason. A followed
-- store's id is kept; any other store id (chosen by whoever sends the request) counts under ''.
ALTER TABLE webhook_refusals ADD COLUMN client TEXT;

CREATE TABLE webhook_refusal_counts (
    hour        INTEGER NOT NULL,               -- unix time // 3600
    store_id    TEXT NOT NULL,                  -- a followed store, or '' for any other
    reason      TEXT NOT NULL,                  -- the reason word (bad_signature, unknown_store, ...)
    refused     INTEGER NOT NULL,
    PRIMARY KEY (hour, store_id, reason)
) WITHOUT ROWID;

INSERT INTO webhook_refusal_counts(hour, store_id, reason, refused)
SELECT at / 3600,
       CASE WHEN store_id IN (SELECT store_id FROM btcpay_stores) THEN store_id ELSE '' END,
       substr(reason, 1, CASE WHEN instr(reason, ':') > 0 THEN instr(reason, ':') - 1 ELSE 40 END),
       COUNT(*)
FROM webhook_refusals GROUP BY 1, 2, 3;

DELETE FROM webhook_refusals WHERE id <= (SELECT MAX(id) FROM webhook_refusals) - 1000;
UPDATE webhook_refusals SET store_id = substr(store_id, 1, 64), delivery_id = substr(delivery_id, 1, 64),
                            reason = substr(reason, 1, 120);
