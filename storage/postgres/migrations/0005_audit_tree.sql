-- Version 5: the audit log's Merkle tree (stored hashes), signed
-- checkpoints, pruning, and triggers that keep the audit tables
-- append-only.

-- A pruned record keeps its row (index, leaf hash, chain hash) with a
-- NULL event. Dropping NOT NULL changes the catalog only: no row is
-- rewritten, so the upgrade is quick on any log.
ALTER TABLE audit_events ALTER COLUMN event DROP NOT NULL;

-- The tree's hashes by stored-hash index (golang.org/x/mod/sumdb/tlog's
-- layout), dense from 0.
CREATE TABLE audit_hashes (
	idx  BIGINT PRIMARY KEY CHECK (idx >= 0),
	hash BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);

-- Signed notes naming the tree's root, by tree size.
CREATE TABLE audit_checkpoints (
	size       BIGINT PRIMARY KEY CHECK (size > 0),
	note       BYTEA NOT NULL CHECK (octet_length(note) > 0),
	created_at TEXT NOT NULL
);

-- No code path may change or remove a stored audit row, save pruning an
-- event: these triggers refuse every DELETE and TRUNCATE of the three
-- tables, every UPDATE of audit_hashes and audit_checkpoints, and every
-- UPDATE of audit_events other than setting event to NULL with idx and
-- both hashes unchanged (an INSERT … ON CONFLICT DO UPDATE is an UPDATE
-- too). An operator who can drop triggers can still tamper: verifying
-- the log against its signed checkpoints is what finds that.
CREATE FUNCTION censusvault_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
		USING HINT = 'stored audit records, hashes and checkpoints are never changed or removed';
END
$$;

CREATE FUNCTION censusvault_audit_events_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.idx IS DISTINCT FROM OLD.idx
		OR NEW.leaf_hash IS DISTINCT FROM OLD.leaf_hash
		OR NEW.chain_hash IS DISTINCT FROM OLD.chain_hash
		OR (NEW.event IS NOT NULL AND NEW.event IS DISTINCT FROM OLD.event) THEN
		RAISE EXCEPTION 'audit_events is append-only: a stored record can only have its event pruned (set to NULL)';
	END IF;
	RETURN NEW;
END
$$;

CREATE TRIGGER audit_events_prune_only BEFORE UPDATE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION censusvault_audit_events_prune_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
	FOR EACH ROW EXECUTE FUNCTION censusvault_audit_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_audit_append_only();

CREATE TRIGGER audit_hashes_no_update BEFORE UPDATE ON audit_hashes
	FOR EACH ROW EXECUTE FUNCTION censusvault_audit_append_only();
CREATE TRIGGER audit_hashes_no_delete BEFORE DELETE ON audit_hashes
	FOR EACH ROW EXECUTE FUNCTION censusvault_audit_append_only();
CREATE TRIGGER audit_hashes_no_truncate BEFORE TRUNCATE ON audit_hashes
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_audit_append_only();

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
	FOR EACH ROW EXECUTE FUNCTION censusvault_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
	FOR EACH ROW EXECUTE FUNCTION censusvault_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_audit_append_only();
