// Package policy decides who may do what where in the census.
//
// Areas form a tree (nation › province › district › commune › ea). A user
// holds grants: a role at an area, covering that area's whole subtree, or a
// deny grant revoking a role's permissions in a subtree. The caller passes
// the subject's grants and the target's area path on every call; the engine
// never stores users, grants or areas, so it stays small and immutable no
// matter how many of the census's ~150,000 field staff exist.
//
// Casbin holds only the role → permission policy and the role inheritance
// (team_leader inherits enumerator). Casbin is the source of truth for
// every (role, action) answer; because both sets are closed and the engine
// is immutable, New asks Casbin once per pair and Allow reads the answers.
// No Casbin type appears in this package's API.
//
// Researchers are granted per research project: a grant with a Project
// holds only for requests about that project (Resource.Project equal to
// it) and is otherwise ignored, as if the user did not hold it; it neither
// allows, denies nor appears in Decision.Roles. A grant without a project
// holds for every request, those about a project included, so a deny grant
// or an admin or auditor grant without a project reaches every project.
//
// Invariants:
//   - An explicit deny beats any allow: a role-policy deny rule reached by
//     any grant on the path, or a deny grant revoking a permission.
//   - Admins, auditors and approvers never see data (separation of
//     duties): the default policy denies them every data action, so
//     holding such a grant on a path also blocks data actions of other
//     roles there.
//   - A submission is opened per field class: the broker asks
//     ReadIdentifying, ReadAnalytic and ReadOperational at its EA and
//     reveals the classes allowed. By default a team leader sees every
//     class, a supervisor the analytic one only (never the identifying
//     or the operational one), and nobody holds the umbrella
//     ReadSubmission.
//   - Only an approver creates a publication point (release point) or
//     approves a change of a privacy-ledger share, not an admin: the
//     approver is the second pair of eyes on what others propose.
//   - The package is pure: no storage, no network, no clock. It imports no
//     other package of this module.
package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Role is a job a user may hold at an area.
type Role string

// The roles of the census organization.
const (
	Enumerator Role = "enumerator"
	TeamLeader Role = "team_leader"
	Supervisor Role = "supervisor"
	Steering   Role = "steering"
	Researcher Role = "researcher"
	Auditor    Role = "auditor"
	Admin      Role = "admin"
	// Approver approves, as the second pair of eyes, what someone else
	// proposed (extracts, budget raises) and creates publication points;
	// it never sees data.
	Approver Role = "approver"
	// Processor works at the processing centre: it proposes extracts of
	// microdata for a registered processing environment (editing, coding,
	// tabulation of the office's own census) and downloads them, once an
	// approver has approved, encrypted to that environment.
	Processor Role = "processor"
)

// allRoles fixes the order of Roles and the index of each role in the
// engine's answer table.
var allRoles = [...]Role{Enumerator, TeamLeader, Supervisor, Steering, Researcher, Processor, Auditor, Admin, Approver}

const numRoles = len(allRoles)

// roleIndex is a switch rather than a map lookup because it sits on the
// hot path of every decision.
func roleIndex(r Role) (int, bool) {
	switch r {
	case Enumerator:
		return 0, true
	case TeamLeader:
		return 1, true
	case Supervisor:
		return 2, true
	case Steering:
		return 3, true
	case Researcher:
		return 4, true
	case Processor:
		return 5, true
	case Auditor:
		return 6, true
	case Admin:
		return 7, true
	case Approver:
		return 8, true
	}
	return -1, false
}

// Roles returns every known role, most field-level first. The slice is new
// on each call.
func Roles() []Role {
	out := make([]Role, numRoles)
	copy(out, allRoles[:])
	return out
}

// ParseRole returns the Role named s, or an error naming the valid roles.
func ParseRole(s string) (Role, error) {
	if _, ok := roleIndex(Role(s)); ok {
		return Role(s), nil
	}
	names := make([]string, numRoles)
	for i, r := range allRoles {
		names[i] = string(r)
	}
	return "", fmt.Errorf("%w %q (valid roles: %s)", ErrUnknownRole, truncate(s), strings.Join(names, ", "))
}

// Action is something a user asks to do at an area.
type Action string

// The actions the broker asks about.
const (
	Deposit      Action = "submission.deposit"       // deposit a questionnaire in an EA
	SupersedeAny Action = "submission.supersede_any" // replace a household deposited by someone else
	// ReadSubmission is the umbrella name of opening one submission, the
	// name audit events of record opens carry. No role is granted it:
	// what an open reveals is decided per field class by the three
	// ReadIdentifying, ReadAnalytic and ReadOperational. It stays an
	// action because the stored policies of vaults made before views
	// existed name it (their deny lines), and they must keep loading.
	ReadSubmission Action = "submission.read"
	ReadReceipt    Action = "receipt.read" // fetch a receipt (the broker additionally checks it is the caller's own)
	ReadProgress   Action = "progress.read"
	ReadAudit      Action = "audit.read"
	RequestTable   Action = "table.request"
	Administer     Action = "admin.manage"
	// CreateReleasePoint freezes the data at a named publication point,
	// the state standard tables are then computed at.
	CreateReleasePoint Action = "release_point.create"
	// ApproveShare approves, as the second pair of eyes, a change of a
	// privacy-ledger share someone else proposed.
	ApproveShare Action = "ledger.approve"
	// ListSubmissions lists the submissions of an area: their metadata
	// (EA, household number, enumerator, times, place in a chain of
	// corrections), never a field of the questionnaire.
	ListSubmissions Action = "submission.list"
	// ReadIdentifying, ReadAnalytic and ReadOperational each reveal one
	// field class of a submission opened for review: names, phone and
	// address; sex, birth, education …; visit counts and who answered.
	// An open shows exactly the classes allowed at the submission's EA.
	ReadIdentifying Action = "submission.read_identifying"
	ReadAnalytic    Action = "submission.read_analytic"
	ReadOperational Action = "submission.read_operational"
	// ReviewSubmission marks a current submission accepted or rejected,
	// with a reason code and a note for its enumerator (issue 13): a
	// team leader or a supervisor, at the submission's EA.
	ReviewSubmission Action = "submission.review"
	// ProposeExtract proposes an extract of microdata for a registered
	// processing environment; DownloadExtract fetches an approved one,
	// encrypted to that environment (processor). ApproveExtract approves
	// someone else's proposal (approver).
	ProposeExtract  Action = "extract.propose"
	ApproveExtract  Action = "extract.approve"
	DownloadExtract Action = "extract.download"
	// ExtractIdentifying, ExtractAnalytic and ExtractOperational each let
	// one field class into an extract of the areas where they are
	// allowed; the environment's registration must list the class too.
	// No role holds ExtractIdentifying by default.
	ExtractIdentifying Action = "extract.identifying"
	ExtractAnalytic    Action = "extract.analytic"
	ExtractOperational Action = "extract.operational"
	// ConfirmGrant confirms, as the second pair of eyes, a change an
	// administrator proposed that could widen access to data: a grant of
	// a role that reveals data (or of approver), the removal of a deny,
	// new role permissions (approver).
	ConfirmGrant Action = "grant.confirm"
	// ExplainPolicy asks why the policy allows or refuses a user an
	// action at an area, now or at a past audit event (admin, auditor).
	ExplainPolicy Action = "policy.explain"
	// AddForm publishes a form definition version, or replaces one no
	// submission uses yet (admin, at the root): it decides which class
	// seals each field of the submissions made with it. Over the API it
	// proposes the version; ConfirmForm publishes it, as the second pair
	// of eyes (approver, at the root), since a class moved from
	// identifying to analytic would give names to whoever reads analytic
	// fields.
	AddForm     Action = "form.add"
	ConfirmForm Action = "form.confirm"
)

var allActions = [...]Action{Deposit, SupersedeAny, ReadSubmission, ReadReceipt, ReadProgress, ReadAudit, RequestTable, Administer, CreateReleasePoint, ApproveShare,
	ListSubmissions, ReadIdentifying, ReadAnalytic, ReadOperational, ReviewSubmission,
	ProposeExtract, ApproveExtract, DownloadExtract, ExtractIdentifying, ExtractAnalytic, ExtractOperational, ConfirmGrant, ExplainPolicy, AddForm, ConfirmForm}

const numActions = len(allActions)

func actionIndex(a Action) (int, bool) {
	switch a {
	case Deposit:
		return 0, true
	case SupersedeAny:
		return 1, true
	case ReadSubmission:
		return 2, true
	case ReadReceipt:
		return 3, true
	case ReadProgress:
		return 4, true
	case ReadAudit:
		return 5, true
	case RequestTable:
		return 6, true
	case Administer:
		return 7, true
	case CreateReleasePoint:
		return 8, true
	case ApproveShare:
		return 9, true
	case ListSubmissions:
		return 10, true
	case ReadIdentifying:
		return 11, true
	case ReadAnalytic:
		return 12, true
	case ReadOperational:
		return 13, true
	case ReviewSubmission:
		return 14, true
	case ProposeExtract:
		return 15, true
	case ApproveExtract:
		return 16, true
	case DownloadExtract:
		return 17, true
	case ExtractIdentifying:
		return 18, true
	case ExtractAnalytic:
		return 19, true
	case ExtractOperational:
		return 20, true
	case ConfirmGrant:
		return 21, true
	case ExplainPolicy:
		return 22, true
	case AddForm:
		return 23, true
	case ConfirmForm:
		return 24, true
	}
	return -1, false
}

// Actions returns every known action. The slice is new on each call.
func Actions() []Action {
	out := make([]Action, numActions)
	copy(out, allActions[:])
	return out
}

// ParseAction returns the Action named s, or an error naming the valid
// actions.
func ParseAction(s string) (Action, error) {
	if _, ok := actionIndex(Action(s)); ok {
		return Action(s), nil
	}
	names := make([]string, numActions)
	for i, a := range allActions {
		names[i] = string(a)
	}
	return "", fmt.Errorf("%w %q (valid actions: %s)", ErrUnknownAction, truncate(s), strings.Join(names, ", "))
}

// Grant is one role a user holds at one area, covering its whole subtree.
type Grant struct {
	Role Role
	Area string
	// Deny revokes, in Area's subtree, every permission Role would give,
	// whatever other grants the user holds there.
	Deny bool
	// Project, when not empty, limits the grant to requests about that
	// research project (Resource.Project equal to it); for any other
	// request the grant is ignored. Empty means every request. At most
	// MaxProjectLen bytes.
	Project string
}

// Subject is the user asking, with every grant the broker holds for them.
type Subject struct {
	User   string
	Grants []Grant
}

// Resource is where the action happens.
type Resource struct {
	// Path holds area codes, root first, the target last; it must be
	// non-empty.
	Path []string
	// Project is the research project the request is about, "" for a
	// request about none. Only grants without a project or with this
	// project count. At most MaxProjectLen bytes.
	Project string
}

// Decision is the answer to one question, with enough detail for the audit
// log to say why.
type Decision struct {
	Allow bool
	// Rule is the rule that decided, human readable, e.g.
	// "grant team_leader@18070; p, enumerator, submission.deposit, allow".
	Rule string
	// Roles are the roles of grants whose area is on the path (and whose
	// project, if any, is the request's), sorted and deduplicated; nil
	// when no grant covers the target.
	Roles []string
}

// Bounds on input, so that a malformed or hostile request cannot make a
// decision expensive. The area tree has five levels and a user holds a
// handful of grants; the limits leave ample room.
const (
	MaxPathDepth   = 32       // areas in Resource.Path
	MaxAreaCodeLen = 64       // bytes in one area code
	MaxProjectLen  = 64       // bytes in Grant.Project and Resource.Project
	MaxGrants      = 4096     // grants in Subject.Grants
	MaxModelBytes  = 64 << 10 // bytes of Options.Model
	MaxPolicyBytes = 1 << 20  // bytes of Options.Policy
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrUnknownRole: a role name not in Roles().
	ErrUnknownRole = errors.New("unknown role")
	// ErrUnknownAction: an action name not in Actions().
	ErrUnknownAction = errors.New("unknown action")
	// ErrInvalidResource: an empty, too deep or malformed area path, or a
	// project name longer than MaxProjectLen.
	ErrInvalidResource = errors.New("invalid resource")
	// ErrInvalidSubject: too many grants, a grant without an area, or a
	// grant whose project name is longer than MaxProjectLen.
	ErrInvalidSubject = errors.New("invalid subject")
	// ErrInvalidModel: a model text Casbin cannot parse or this package
	// cannot use.
	ErrInvalidModel = errors.New("invalid policy model")
	// ErrInvalidPolicy: a malformed policy line.
	ErrInvalidPolicy = errors.New("invalid policy")
)

// truncate keeps error messages bounded when they quote untrusted input,
// cutting on a rune boundary as broker/untrusted.Clip does (policy is a
// leaf and imports no other package of the module).
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
