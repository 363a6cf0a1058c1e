-- 0002: an index on the bans' expiry. The table is WITHOUT ROWID, so the
-- index holds (expires, prefix): listing the bans in force for the kernel
-- (ActiveBanExpiries) and purging expired ones read this index instead of
-- every row with its evidence.
CREATE INDEX bans_expires ON bans (expires);
