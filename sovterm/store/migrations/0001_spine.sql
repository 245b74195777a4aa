-- The spine: secrets, settings kept by the daemon, loop heartbeats, alerts, audit.
CREATE TABLE secrets (
    name        TEXT PRIMARY KEY,
    ciphertext  BLOB NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Small typed state the daemon keeps between starts (wizard progress, cursors, mode per store...).
CREATE TABLE kv (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,          -- JSON
    updated_at  INTEGER NOT NULL
);

CREATE TABLE loop_runs (
    loop        TEXT PRIMARY KEY,
    last_start  INTEGER,
    last_end    INTEGER,
    last_ok     INTEGER,                -- 1 ok, 0 failed
    summary     TEXT                    -- JSON: what the last run did
);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,          -- unix user name (or 'daemon')
    action      TEXT NOT NULL,
    subject     TEXT,
    detail      TEXT,                   -- JSON
    outcome     TEXT NOT NULL
);
CREATE INDEX audit_at ON audit(at);
