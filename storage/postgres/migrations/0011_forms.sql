-- Version 11: the forms an administrator added (storage.Form).
--
-- forms holds one definition per (name, version). A version may be stored
-- or replaced (UPDATE) only while no submission of that form and version
-- exists: the trigger refuses the INSERT of a version in use (a form
-- built into the binary), the UPDATE of one (an INSERT … ON CONFLICT DO
-- UPDATE is one too), an UPDATE that would change a (name, version),
-- every DELETE and TRUNCATE. Writers are serialized by the
-- audit head's lock and run in READ COMMITTED, so the trigger's look at
-- submissions sees every deposit committed before it.
--
-- submissions_form indexes submissions by (form, form_version), so "is
-- this version used" is one index lookup. Building it reads every stored
-- submission once: the one slow step of this upgrade on a large vault.
--
-- form_proposals holds the versions administrators proposed over the API
-- and no approver confirmed yet, one per (name, version): no part of the
-- registry, replaced by a newer proposal of the same version, removed
-- when confirmed (the form is then in forms, confirmed_by naming the
-- approver).
--
-- The CHECKs hold what PutForm promises against a statement that skipped
-- it, the SHA-256 of the definition included. Names are ordered in byte
-- order ("C"), as in SQLite.
CREATE TABLE forms (
	name        TEXT COLLATE "C" NOT NULL CHECK (name <> ''),
	version     INTEGER NOT NULL CHECK (version > 0),
	sha256      TEXT NOT NULL CHECK (sha256 = encode(sha256(definition), 'hex')),
	definition  BYTEA NOT NULL CHECK (length(definition) > 0),
	added_at    TEXT NOT NULL CHECK (added_at <> ''),
	added_by    TEXT COLLATE "C" NOT NULL CHECK (added_by <> ''),
	audit_index BIGINT NOT NULL CHECK (audit_index >= 0),
	confirmed_by TEXT COLLATE "C" NOT NULL DEFAULT '',
	confirmed_at TEXT NOT NULL DEFAULT '' CHECK ((confirmed_at = '') = (confirmed_by = '')),
	PRIMARY KEY (name, version)
);

CREATE TABLE form_proposals (
	name        TEXT COLLATE "C" NOT NULL CHECK (name <> ''),
	version     INTEGER NOT NULL CHECK (version > 0),
	sha256      TEXT NOT NULL CHECK (sha256 = encode(sha256(definition), 'hex')),
	definition  BYTEA NOT NULL CHECK (length(definition) > 0),
	proposed_at TEXT NOT NULL CHECK (proposed_at <> ''),
	proposed_by TEXT COLLATE "C" NOT NULL CHECK (proposed_by <> ''),
	audit_index BIGINT NOT NULL CHECK (audit_index >= 0),
	PRIMARY KEY (name, version)
);

CREATE INDEX submissions_form ON submissions(form, form_version);

CREATE FUNCTION censusvault_forms_unused_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- Nested, so OLD and NEW are read only for a row INSERT or UPDATE
	-- (they are NULL for a statement's TRUNCATE trigger).
	IF TG_OP = 'INSERT' THEN
		IF NOT EXISTS (SELECT 1 FROM submissions WHERE form = NEW.name AND form_version = NEW.version) THEN
			RETURN NEW;
		END IF;
	ELSIF TG_OP = 'UPDATE' THEN
		IF (NEW.name, NEW.version) IS NOT DISTINCT FROM (OLD.name, OLD.version)
			AND NOT EXISTS (SELECT 1 FROM submissions WHERE form = OLD.name AND form_version = OLD.version) THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'forms: % refused', TG_OP
		USING HINT = 'a form version is replaced only while no submission uses it, and is never removed; add a new version instead';
END
$$;

CREATE TRIGGER forms_unused_insert BEFORE INSERT ON forms
	FOR EACH ROW EXECUTE FUNCTION censusvault_forms_unused_only();
CREATE TRIGGER forms_unused_only BEFORE UPDATE ON forms
	FOR EACH ROW EXECUTE FUNCTION censusvault_forms_unused_only();
CREATE TRIGGER forms_no_delete BEFORE DELETE ON forms
	FOR EACH ROW EXECUTE FUNCTION censusvault_forms_unused_only();
CREATE TRIGGER forms_no_truncate BEFORE TRUNCATE ON forms
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_forms_unused_only();
