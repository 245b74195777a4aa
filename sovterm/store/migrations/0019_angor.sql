-- #16 point 4: Angor projects the operator follows, and the last good data seen of each.

-- A follow is a project id (angor1...) or a founder's Nostr key (every project that key publishes).
CREATE TABLE angor_follows (
    ref TEXT PRIMARY KEY,            -- the project id, or the founder's npub, as shown back to the operator
    kind TEXT NOT NULL CHECK (kind IN ('project', 'founder')),
    pubkey TEXT,                     -- the founder's key in hex (kind 'founder')
    added_at INTEGER NOT NULL
);

-- One row per project found through a follow. `chain` is the indexer's part (project, stats, investments)
-- and `nostr` the relays' part (the verified kind-3030 content, profile, description); each is replaced only
-- by a good read, so a source that is down leaves the last good data and its age.
CREATE TABLE angor_projects (
    project_id TEXT PRIMARY KEY,
    follow_ref TEXT NOT NULL REFERENCES angor_follows(ref) ON DELETE CASCADE,
    chain TEXT,
    chain_at INTEGER,
    nostr TEXT,
    nostr_at INTEGER
);
CREATE INDEX angor_projects_follow ON angor_projects(follow_ref);
