-- Version 10: extracts for the processing centre.
--
-- extract_environments holds the registered processing environments (an
-- age recipient and the field classes it may receive). A name always
-- means one recipient: an environment is never removed or changed, only
-- retired. The triggers refuse DELETE, TRUNCATE and every UPDATE (an
-- INSERT … ON CONFLICT DO UPDATE is one too) but the retirement of an
-- environment in use: one that sets retired_by (not to '') on a row whose
-- retired_by is '' and leaves every column but retired_by, retired_at and
-- retire_audit as it was.
--
-- extract_proposals holds the proposed extracts and their approval,
-- guarded as ledger_shares is: DELETE, TRUNCATE and every UPDATE but the
-- approval of a pending proposal are refused.
--
-- areas and classes are JSON arrays of strings, stored as the text
-- written, so they read back in the caller's order. The CHECKs hold what
-- InsertEnvironment and ProposeExtract promise against a statement that
-- skipped them; the last one of each table keeps a row either wholly in
-- force or wholly retired (approved). Names are ordered in byte order
-- ("C"), as in SQLite. Nothing existing is rewritten.
CREATE TABLE extract_environments (
	name         TEXT COLLATE "C" PRIMARY KEY CHECK (name <> ''),
	recipient    TEXT NOT NULL CHECK (recipient <> ''),
	classes      TEXT NOT NULL CHECK (CASE WHEN jsonb_typeof(classes::jsonb) = 'array'
		THEN jsonb_array_length(classes::jsonb) > 0 ELSE false END),
	created_by   TEXT COLLATE "C" NOT NULL CHECK (created_by <> ''),
	created_at   TEXT NOT NULL CHECK (created_at <> ''),
	audit_index  BIGINT NOT NULL CHECK (audit_index >= 0),
	retired_by   TEXT COLLATE "C" NOT NULL DEFAULT '',
	retired_at   TEXT NOT NULL DEFAULT '',
	retire_audit BIGINT NOT NULL DEFAULT 0 CHECK (retire_audit >= 0),
	CHECK ((retired_by = '' AND retired_at = '' AND retire_audit = 0) OR (retired_by <> '' AND retired_at <> ''))
);

CREATE FUNCTION censusvault_extract_environments_retire_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- Nested, so OLD and NEW are read only for a row UPDATE (they are
	-- NULL for a statement's TRUNCATE trigger).
	IF TG_OP = 'UPDATE' THEN
		IF OLD.retired_by = '' AND NEW.retired_by <> ''
			AND (NEW.name, NEW.recipient, NEW.classes, NEW.created_by, NEW.created_at, NEW.audit_index)
				IS NOT DISTINCT FROM
				(OLD.name, OLD.recipient, OLD.classes, OLD.created_by, OLD.created_at, OLD.audit_index) THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'extract_environments: % refused', TG_OP
		USING HINT = 'an environment can only be retired, once, and is otherwise never changed or removed; register a new one instead';
END
$$;

CREATE TRIGGER extract_environments_retire_only BEFORE UPDATE ON extract_environments
	FOR EACH ROW EXECUTE FUNCTION censusvault_extract_environments_retire_only();
CREATE TRIGGER extract_environments_no_delete BEFORE DELETE ON extract_environments
	FOR EACH ROW EXECUTE FUNCTION censusvault_extract_environments_retire_only();
CREATE TRIGGER extract_environments_no_truncate BEFORE TRUNCATE ON extract_environments
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_extract_environments_retire_only();

CREATE TABLE extract_proposals (
	seq            BIGINT PRIMARY KEY CHECK (seq > 0),
	environment    TEXT COLLATE "C" NOT NULL REFERENCES extract_environments(name),
	areas          TEXT NOT NULL CHECK (CASE WHEN jsonb_typeof(areas::jsonb) = 'array'
		THEN jsonb_array_length(areas::jsonb) > 0 ELSE false END),
	form           TEXT COLLATE "C" NOT NULL CHECK (form <> ''),
	form_version   INTEGER NOT NULL CHECK (form_version > 0),
	classes        TEXT NOT NULL CHECK (CASE WHEN jsonb_typeof(classes::jsonb) = 'array'
		THEN jsonb_array_length(classes::jsonb) > 0 ELSE false END),
	format         TEXT COLLATE "C" NOT NULL CHECK (format <> ''),
	purpose        TEXT NOT NULL CHECK (purpose <> ''),
	proposed_by    TEXT COLLATE "C" NOT NULL CHECK (proposed_by <> ''),
	proposed_at    TEXT NOT NULL CHECK (proposed_at <> ''),
	proposal_audit BIGINT NOT NULL CHECK (proposal_audit >= 0),
	approved_by    TEXT COLLATE "C" NOT NULL DEFAULT '',
	approved_at    TEXT NOT NULL DEFAULT '',
	approval_audit BIGINT NOT NULL DEFAULT 0 CHECK (approval_audit >= 0),
	CHECK ((approved_by = '' AND approved_at = '' AND approval_audit = 0) OR (approved_by <> '' AND approved_at <> ''))
);

CREATE FUNCTION censusvault_extract_proposals_approve_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		IF OLD.approved_by = '' AND NEW.approved_by <> ''
			AND (NEW.seq, NEW.environment, NEW.areas, NEW.form, NEW.form_version, NEW.classes, NEW.format, NEW.purpose,
				NEW.proposed_by, NEW.proposed_at, NEW.proposal_audit)
				IS NOT DISTINCT FROM
				(OLD.seq, OLD.environment, OLD.areas, OLD.form, OLD.form_version, OLD.classes, OLD.format, OLD.purpose,
				OLD.proposed_by, OLD.proposed_at, OLD.proposal_audit) THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'extract_proposals: % refused', TG_OP
		USING HINT = 'a proposal can only be approved, once, and is otherwise never changed or removed; propose a new extract instead';
END
$$;

CREATE TRIGGER extract_proposals_approve_only BEFORE UPDATE ON extract_proposals
	FOR EACH ROW EXECUTE FUNCTION censusvault_extract_proposals_approve_only();
CREATE TRIGGER extract_proposals_no_delete BEFORE DELETE ON extract_proposals
	FOR EACH ROW EXECUTE FUNCTION censusvault_extract_proposals_approve_only();
CREATE TRIGGER extract_proposals_no_truncate BEFORE TRUNCATE ON extract_proposals
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_extract_proposals_approve_only();
