package wire

import "time"

// Policy administration over the API (issue 13): the bodies and answers
// of the /v1/admin routes and of GET /v1/policy/explain. No token travels
// in any of them: new and reissued tokens come back only age-encrypted —
// to the field office's recipient, which the host operator registers
// (`censusvault user token-recipient`), or for a reissue to the user's own
// registered recipient; never to one only the request names — as the
// body of an application/octet-stream answer (a CSV
// user,token,role,area,expires once decrypted), with the headers below.

// Headers of an answer carrying new users' tokens, age-encrypted.
const (
	HeaderUsers  = "X-Censusvault-Users"  // users created
	HeaderActive = "X-Censusvault-Active" // whose grant holds now
	// HeaderPending lists, comma-separated, the proposals an approver
	// must confirm before the other users' grants hold ("" if none).
	HeaderPending = "X-Censusvault-Pending"
	// HeaderRecipient is the start (RecipientPrefixLen characters) of
	// the age recipient the tokens are encrypted to: which identity
	// opens them.
	HeaderRecipient = "X-Censusvault-Recipient"
)

// RecipientPrefixLen is how much of a recipient HeaderRecipient shows.
const RecipientPrefixLen = 24

// RecipientPrefix is r as HeaderRecipient shows it.
func RecipientPrefix(r string) string {
	if len(r) > RecipientPrefixLen {
		return r[:RecipientPrefixLen]
	}
	return r
}

// Grant is a role at an area (and its subtree), or with Deny the
// revocation of the role's permissions there; Project limits a
// researcher's grant to one project.
type Grant struct {
	Role    string `json:"role"`
	Area    string `json:"area"`
	Deny    bool   `json:"deny,omitempty"`
	Project string `json:"project,omitempty"`
}

// NewUser is the body of POST /v1/admin/users.
type NewUser struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Area    string `json:"area"`
	Project string `json:"project,omitempty"`
	// Expires is a lifetime (30d, 36h) or an RFC 3339 time; "" for the
	// lifetime of the role's tokens. A later expiry is cut to it.
	Expires string `json:"expires,omitempty"`
	// Recipient is the age recipient (age1… or age1pq1…) the token is
	// encrypted to: "" for the field office's registered one, which is
	// the only one a request may name (else 403
	// recipient_not_registered).
	Recipient string `json:"recipient,omitempty"`
}

// Reissue is the body of POST /v1/admin/users/{name}/reissue (or no body
// at all). Recipient "" is the field office's registered recipient, or
// if none is registered the user's own; a request may name only one of
// those two.
type Reissue struct {
	Recipient string `json:"recipient,omitempty"`
}

// TokenRecipient answers GET /v1/admin/token-recipient: the field
// office's registered age recipient, "" when none is (then tokens cannot
// be made over the API: 409 no_token_recipient).
type TokenRecipient struct {
	Recipient string `json:"recipient"`
}

// GrantRequest is the body of POST and DELETE /v1/admin/grants.
type GrantRequest struct {
	User    string `json:"user"`
	Role    string `json:"role"`
	Area    string `json:"area"`
	Deny    bool   `json:"deny,omitempty"`
	Project string `json:"project,omitempty"`
}

// GrantChange answers a change of grants or of the role policy: in force
// now (201), or a proposal an approver must confirm (202).
type GrantChange struct {
	Active   bool  `json:"active"`
	Proposal int64 `json:"proposal,omitempty"`
}

// User is a user as an administrator sees it: never a token.
type User struct {
	Name   string  `json:"name"`
	Grants []Grant `json:"grants"`
	// Pending are grants proposed for the user, waiting for an approver.
	Pending   []Grant   `json:"pending,omitempty"`
	Recipient string    `json:"recipient,omitempty"` // for encrypted tables
	Expires   time.Time `json:"expires,omitzero"`    // zero: never
	Revoked   time.Time `json:"revoked,omitzero"`    // zero: not revoked
}

// UserList is one page of GET /v1/admin/users, by name in byte order.
type UserList struct {
	Users []User `json:"users"`
	// Next is the "after" of the next page; null when the list is
	// complete.
	Next *string `json:"next"`
}

// Proposal is a change waiting for, or confirmed by, an approver.
type Proposal struct {
	Seq    int64  `json:"seq"`
	Kind   string `json:"kind"` // grant, ungrant or policy
	User   string `json:"user,omitempty"`
	Grant  *Grant `json:"grant,omitempty"`
	Status string `json:"status"` // pending, confirmed or expired
	// PolicyHash is a proposed role policy's engine hash.
	PolicyHash  string    `json:"policy_hash,omitempty"`
	ProposedBy  string    `json:"proposed_by"`
	ProposedAt  time.Time `json:"proposed_at"`
	ConfirmedBy string    `json:"confirmed_by,omitempty"`
	ConfirmedAt time.Time `json:"confirmed_at,omitzero"`
	// Widens, for a role policy, names the roles that would reveal data
	// under it and do not now: confirming it gives data to their holders.
	Widens []string `json:"widens,omitempty"`
}

// Proposal statuses.
const (
	ProposalPending   = "pending"
	ProposalConfirmed = "confirmed"
	ProposalExpired   = "expired" // a week passed unconfirmed: propose it again
)

// Proposals answers GET /v1/admin/proposals: pending first, then
// confirmed, each oldest first.
type Proposals struct {
	Proposals []Proposal `json:"proposals"`
}

// UserGrant is one grant of one user.
type UserGrant struct {
	User    string `json:"user"`
	Role    string `json:"role"`
	Area    string `json:"area"`
	Deny    bool   `json:"deny,omitempty"`
	Project string `json:"project,omitempty"`
}

// Grants answers GET /v1/admin/grants: every grant in force and the
// proposals waiting for an approver.
type Grants struct {
	PolicyHash string      `json:"policy_hash"`
	Grants     []UserGrant `json:"grants"`
	Pending    []Proposal  `json:"pending"`
}

// Policy answers GET /v1/admin/policy: the role policy in force.
type Policy struct {
	Model string `json:"model"` // the Casbin model
	Rules string `json:"rules"` // the role policy, as POST /v1/admin/policy takes it
	// EngineHash is the hash of model and rules; PolicyHash that of
	// those and every grant: what each audit event carries.
	EngineHash string `json:"engine_hash"`
	PolicyHash string `json:"policy_hash"`
	Users      int    `json:"users"`   // users holding a grant
	Grants     int    `json:"grants"`  // grants in force
	Pending    int    `json:"pending"` // proposals waiting for an approver
}

// Explanation answers GET /v1/policy/explain: whether the policy allows
// a user an action at an area, and the grant and rule that decided.
type Explanation struct {
	User    string `json:"user"`
	Action  string `json:"action"`
	Area    string `json:"area"`
	Project string `json:"project,omitempty"`
	Allow   bool   `json:"allow"`
	// Rule is the grant and role-policy rule that decided, e.g.
	// "grant team_leader@18070; p, enumerator, submission.deposit, allow".
	Rule string `json:"rule"`
	// Roles are the user's roles on the area's path; Grants every grant
	// the user held under the policy evaluated.
	Roles      []string `json:"roles"`
	Grants     []Grant  `json:"grants"`
	PolicyHash string   `json:"policy_hash"`
	// Event is set when a past audit event was explained.
	Event *PastDecision `json:"event,omitempty"`
	Note  string        `json:"note,omitempty"`
}

// PastDecision is what explaining a past audit event found.
type PastDecision struct {
	Index    int64  `json:"index"`
	Recorded string `json:"recorded"` // the decision the event recorded: allow, deny or ""
	// HashMatches: the policy rebuilt from the grant log has the hash
	// the event carries. When false the answer is not to be trusted:
	// the grant log or the event is not what was written.
	HashMatches bool `json:"hash_matches"`
	// Agrees: the decision re-evaluated is the one recorded.
	Agrees bool `json:"agrees"`
}

// TokenLifetimes are how long new tokens of each role live, as a number
// of whole days or hours ("60d", "36h"). The body of POST
// /v1/admin/lifetimes names the roles to change; the answer of GET and
// POST names every role.
type TokenLifetimes struct {
	Lifetimes map[string]string `json:"lifetimes"`
}
