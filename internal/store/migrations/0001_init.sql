-- 0001: bans, ban history, log read positions, run-time allowlist.
-- Prefixes are TEXT in canonical form (netip.Prefix.Masked().String()),
-- times are INTEGER unix milliseconds.

-- The bans in force. One row per prefix; an expired row stays until
-- PurgeExpired and is treated as absent.
CREATE TABLE bans (
    prefix   TEXT    NOT NULL PRIMARY KEY,
    jail     TEXT    NOT NULL,
    detector TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    evidence TEXT,              -- JSON array of strings (capped); NULL when none
    created  INTEGER NOT NULL,  -- when this ban started
    expires  INTEGER,           -- NULL: permanent
    offence  INTEGER NOT NULL
) WITHOUT ROWID;

-- Every ban decision ever recorded, for escalation and `moat bans --history`.
-- id is the order of recording; (prefix, created) serves Offences and History.
CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    prefix      TEXT    NOT NULL,
    jail        TEXT    NOT NULL,
    detector    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    evidence    TEXT,
    created     INTEGER NOT NULL,
    expires     INTEGER,           -- NULL: permanent
    offence     INTEGER NOT NULL,
    unbanned_at INTEGER            -- set when removed by hand before it expired
);
CREATE INDEX history_prefix_created ON history (prefix, created);

-- Read positions of log files.
CREATE TABLE offsets (
    path    TEXT    NOT NULL PRIMARY KEY,
    dev     INTEGER NOT NULL,  -- uint64 stored as its int64 bit pattern
    ino     INTEGER NOT NULL,  -- idem
    pos     INTEGER NOT NULL,
    size    INTEGER NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;

-- Read positions of cursor-based sources (journald).
CREATE TABLE cursors (
    key     TEXT    NOT NULL PRIMARY KEY,
    cursor  TEXT    NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;

-- Allowlist entries added at run time (`moat allowlist add`).
CREATE TABLE allowlist (
    prefix  TEXT    NOT NULL PRIMARY KEY,
    comment TEXT    NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;
