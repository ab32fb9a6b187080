-- Version 2: crypto-shredding.
--
-- A shredded data key keeps its row as a tombstone (wrapped emptied,
-- shredded_at set), so readers can tell "shredded" from "missing" and the
-- same (class, commune, version) can never be put again. The empty
-- string is live, as for the other times.
ALTER TABLE data_keys ADD COLUMN shredded_at TEXT NOT NULL DEFAULT '';

-- DataKeys lists keys in (class, commune, version) order and pages by
-- that key: byte order ("C"), as in SQLite, so the order does not depend
-- on the database's locale and the primary key's index serves it.
ALTER TABLE data_keys
	ALTER COLUMN class TYPE TEXT COLLATE "C",
	ALTER COLUMN commune TYPE TEXT COLLATE "C";
