-- Version 9: the grant log and proposed grant changes.
--
-- grant_log holds every change of the policy in force (a grant, an
-- ungrant, a role policy, the start of the log), so the policy at any
-- audit event can be rebuilt from it. It is append-only: the triggers
-- refuse every UPDATE (an INSERT … ON CONFLICT DO UPDATE is one too),
-- DELETE and TRUNCATE.
--
-- grant_proposals holds the changes an administrator proposed and their
-- confirmation by an approver. The triggers refuse DELETE, TRUNCATE and
-- every UPDATE but the confirmation of a pending proposal: one that sets
-- confirmed_by (not to '') on a row whose confirmed_by is '' and leaves
-- every column but confirmed_by, confirmed_at and confirm_audit as it
-- was.
--
-- The CHECKs hold what AppendGrantLog and ProposeGrant promise against a
-- statement that skipped them: a grant or ungrant names a user, a role
-- and an area and carries no policy; a policy (or start) carries a model
-- and a policy and names no user or grant; a proposal is wholly pending
-- or wholly confirmed. Names are ordered in byte order ("C"), as in
-- SQLite.
--
-- users_name_bytes lets Users page through the users in byte order
-- whatever the database's collation (users.name has the default one).

CREATE TABLE grant_log (
	seq         BIGINT PRIMARY KEY CHECK (seq > 0),
	audit_index BIGINT NOT NULL CHECK (audit_index >= 0),
	at          TEXT NOT NULL CHECK (at <> ''),
	op          TEXT NOT NULL CHECK (op IN ('grant', 'ungrant', 'policy', 'start')),
	user_name   TEXT COLLATE "C" NOT NULL,
	role        TEXT COLLATE "C" NOT NULL,
	area        TEXT COLLATE "C" NOT NULL,
	deny        BOOLEAN NOT NULL,
	project     TEXT COLLATE "C" NOT NULL,
	model       TEXT NOT NULL,
	policy      TEXT NOT NULL,
	policy_hash TEXT NOT NULL CHECK (policy_hash <> ''),
	CHECK (CASE WHEN op IN ('grant', 'ungrant')
		THEN user_name <> '' AND role <> '' AND area <> '' AND model = '' AND policy = ''
		ELSE model <> '' AND policy <> '' AND user_name = '' AND role = '' AND area = '' AND NOT deny AND project = '' END)
);

CREATE FUNCTION censusvault_grant_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'grant_log is append-only: % refused', TG_OP
		USING HINT = 'a stored entry is never changed or removed; append the change that undoes it instead';
END
$$;

CREATE TRIGGER grant_log_no_update BEFORE UPDATE ON grant_log
	FOR EACH ROW EXECUTE FUNCTION censusvault_grant_log_append_only();
CREATE TRIGGER grant_log_no_delete BEFORE DELETE ON grant_log
	FOR EACH ROW EXECUTE FUNCTION censusvault_grant_log_append_only();
CREATE TRIGGER grant_log_no_truncate BEFORE TRUNCATE ON grant_log
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_grant_log_append_only();

CREATE TABLE grant_proposals (
	seq            BIGINT PRIMARY KEY CHECK (seq > 0),
	kind           TEXT NOT NULL CHECK (kind IN ('grant', 'ungrant', 'policy')),
	user_name      TEXT COLLATE "C" NOT NULL,
	role           TEXT COLLATE "C" NOT NULL,
	area           TEXT COLLATE "C" NOT NULL,
	deny           BOOLEAN NOT NULL,
	project        TEXT COLLATE "C" NOT NULL,
	model          TEXT NOT NULL,
	policy         TEXT NOT NULL,
	reason         TEXT NOT NULL,
	proposed_by    TEXT COLLATE "C" NOT NULL CHECK (proposed_by <> ''),
	proposed_at    TEXT NOT NULL CHECK (proposed_at <> ''),
	proposal_audit BIGINT NOT NULL CHECK (proposal_audit >= 0),
	confirmed_by   TEXT COLLATE "C" NOT NULL DEFAULT '',
	confirmed_at   TEXT NOT NULL DEFAULT '',
	confirm_audit  BIGINT NOT NULL DEFAULT 0 CHECK (confirm_audit >= 0),
	CHECK (CASE WHEN kind IN ('grant', 'ungrant')
		THEN user_name <> '' AND role <> '' AND area <> '' AND model = '' AND policy = ''
		ELSE model <> '' AND policy <> '' AND user_name = '' AND role = '' AND area = '' AND NOT deny AND project = '' END),
	CHECK ((confirmed_by = '' AND confirmed_at = '' AND confirm_audit = 0) OR (confirmed_by <> '' AND confirmed_at <> ''))
);

CREATE FUNCTION censusvault_grant_proposals_confirm_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	-- Nested, so OLD and NEW are read only for a row UPDATE (they are
	-- NULL for a statement's TRUNCATE trigger).
	IF TG_OP = 'UPDATE' THEN
		IF OLD.confirmed_by = '' AND NEW.confirmed_by <> ''
			AND (NEW.seq, NEW.kind, NEW.user_name, NEW.role, NEW.area, NEW.deny, NEW.project, NEW.model, NEW.policy,
				NEW.reason, NEW.proposed_by, NEW.proposed_at, NEW.proposal_audit)
				IS NOT DISTINCT FROM
				(OLD.seq, OLD.kind, OLD.user_name, OLD.role, OLD.area, OLD.deny, OLD.project, OLD.model, OLD.policy,
				OLD.reason, OLD.proposed_by, OLD.proposed_at, OLD.proposal_audit) THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION 'grant_proposals: % refused', TG_OP
		USING HINT = 'a proposal can only be confirmed, once, and is otherwise never changed or removed; propose a new change instead';
END
$$;

CREATE TRIGGER grant_proposals_confirm_only BEFORE UPDATE ON grant_proposals
	FOR EACH ROW EXECUTE FUNCTION censusvault_grant_proposals_confirm_only();
CREATE TRIGGER grant_proposals_no_delete BEFORE DELETE ON grant_proposals
	FOR EACH ROW EXECUTE FUNCTION censusvault_grant_proposals_confirm_only();
CREATE TRIGGER grant_proposals_no_truncate BEFORE TRUNCATE ON grant_proposals
	FOR EACH STATEMENT EXECUTE FUNCTION censusvault_grant_proposals_confirm_only();

CREATE INDEX users_name_bytes ON users (name COLLATE "C");
