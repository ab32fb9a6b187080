-- Version 7: the privacy ledger.
--
-- ledger_debits holds each charge of a differentially private table, one
-- per query digest. Budget once spent stays spent: the triggers refuse
-- every UPDATE (an INSERT … ON CONFLICT DO UPDATE is one too), DELETE
-- and TRUNCATE. areas is a JSON array of area codes, stored as the text
-- written, so it reads back in the caller's order.
--
-- ledger_shares holds proposed changes of a share and their approval.
-- The triggers refuse DELETE, TRUNCATE and every UPDATE but the
-- approval of a pending change: one that sets approved_by (not to '')
-- on a row whose approved_by is '' and leaves every column but
-- approved_by, approved_at and approval_audit as it was.
--
-- The CHECKs hold what InsertLedgerDebit and ProposeShare promise
-- against a statement that skipped them; the last one keeps a change
-- either wholly pending or wholly approved. Digests, kinds and names are
-- ordered in byte order ("C"), as in SQLite.
-- release_points.scheduled marks the scheduled points of dp tables (the
-- day's point), which publication points never chain to.
ALTER TABLE release_points ADD COLUMN scheduled BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE ledger_debits (
	query       TEXT COLLATE "C" PRIMARY KEY CHECK (query <> ''),
	audit_index BIGINT NOT NULL CHECK (audit_index >= 0),
	result      TEXT NOT NULL CHECK (result <> ''),
	areas       TEXT NOT NULL CHECK (CASE WHEN jsonb_typeof(areas::jsonb) = 'array'
		THEN jsonb_array_length(areas::jsonb) > 0 ELSE false END),
	project     TEXT COLLATE "C" NOT NULL CHECK (project <> ''),
	researcher  TEXT COLLATE "C" NOT NULL CHECK (researcher <> ''),
	rho         BIGINT NOT NULL CHECK (rho > 0),
	at          TEXT NOT NULL CHECK (at <> '')
);
CREATE INDEX ledger_debits_audit_index ON ledger_debits(audit_index);

CREATE FUNCTION censusvault_ledger_debits_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'ledger_debits is append-only: % refused', TG_OP
		USING HINT = 'privacy budget once spent stays spent; a stored debit is never changed or removed';
END
$$;

CREATE TRIGGER ledger_debits_no_update BEFORE UPDATE ON ledger_debits
	FOR EACH ROW EXECUTE FUNCTION censusvault_ledger_debits_append_only();
CREATE TRIGGER ledger_debits_no_delete BEFORE DELETE ON ledger_debits
	FOR EACH ROW EXECUTE FUNCTION censusvault_ledger_debits_append_only();
CREATE TRIGGER ledger_debits_no_truncate BEFORE TRUNCATE ON ledger_debits
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_ledger_debits_append_only();

CREATE TABLE ledger_shares (
	seq            BIGINT PRIMARY KEY CHECK (seq > 0),
	kind           TEXT COLLATE "C" NOT NULL CHECK (kind <> ''),
	holder         TEXT COLLATE "C" NOT NULL,
	rho            BIGINT NOT NULL CHECK (rho > 0),
	reason         TEXT NOT NULL CHECK (reason <> ''),
	proposed_by    TEXT COLLATE "C" NOT NULL CHECK (proposed_by <> ''),
	proposed_at    TEXT NOT NULL CHECK (proposed_at <> ''),
	proposal_audit BIGINT NOT NULL CHECK (proposal_audit >= 0),
	approved_by    TEXT COLLATE "C" NOT NULL DEFAULT '',
	approved_at    TEXT NOT NULL DEFAULT '',
	approval_audit BIGINT NOT NULL DEFAULT 0 CHECK (approval_audit >= 0),
	CHECK ((approved_by = '' AND approved_at = '' AND approval_audit = 0) OR (approved_by <> '' AND approved_at <> ''))
);

CREATE FUNCTION censusvault_ledger_shares_approve_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- Nested, so OLD and NEW are read only for a row UPDATE (they are
	-- NULL for a statement's TRUNCATE trigger).
	IF TG_OP = 'UPDATE' THEN
		IF OLD.approved_by = '' AND NEW.approved_by <> ''
			AND (NEW.seq, NEW.kind, NEW.holder, NEW.rho, NEW.reason, NEW.proposed_by, NEW.proposed_at, NEW.proposal_audit)
				IS NOT DISTINCT FROM
				(OLD.seq, OLD.kind, OLD.holder, OLD.rho, OLD.reason, OLD.proposed_by, OLD.proposed_at, OLD.proposal_audit) THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'ledger_shares: % refused', TG_OP
		USING HINT = 'a share change can only be approved, once, and is otherwise never changed or removed; propose a new change instead';
END
$$;

CREATE TRIGGER ledger_shares_approve_only BEFORE UPDATE ON ledger_shares
	FOR EACH ROW EXECUTE FUNCTION censusvault_ledger_shares_approve_only();
CREATE TRIGGER ledger_shares_no_delete BEFORE DELETE ON ledger_shares
	FOR EACH ROW EXECUTE FUNCTION censusvault_ledger_shares_approve_only();
CREATE TRIGGER ledger_shares_no_truncate BEFORE TRUNCATE ON ledger_shares
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_ledger_shares_approve_only();
