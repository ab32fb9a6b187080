package policy

// Separation of duties, as something the broker can check: which actions
// touch data, which roles therefore reveal data, and whether a role
// policy lets a trust role (admin, auditor, approver) near any of it.

// dataActions write, list or reveal census records, or release tables
// of them: what the trust roles must never do.
var dataActions = [...]Action{Deposit, SupersedeAny, ReadSubmission, ReadReceipt, RequestTable,
	ListSubmissions, ReadIdentifying, ReadAnalytic, ReadOperational, ReviewSubmission,
	ProposeExtract, DownloadExtract, ExtractIdentifying, ExtractAnalytic, ExtractOperational}

// revealing are the data actions that show field values or tables of
// them to the caller (or to its processing environment).
var revealing = [...]Action{ReadSubmission, ReadIdentifying, ReadAnalytic, ReadOperational,
	RequestTable, DownloadExtract, ExtractIdentifying, ExtractAnalytic, ExtractOperational}

// trustRoles oversee the vault and never see data.
var trustRoles = [...]Role{Admin, Auditor, Approver}

// dataRoles are the roles the census gives data to (issue 13 names
// them): whatever a role policy of the moment says, a grant of one is a
// grant of data. A role policy can make other roles reveal data too
// (RevealsData), never fewer.
var dataRoles = [...]Role{TeamLeader, Supervisor, Researcher, Processor}

// fourEyes are the actions of the second pair of eyes: whoever
// administers must never hold them, or an administrator could confirm
// what another administrator (or they themselves, under a second name)
// proposed.
var fourEyes = [...]Action{ConfirmGrant, ApproveExtract, ApproveShare, CreateReleasePoint, ConfirmForm}

// IsTrustRole reports whether r oversees the vault (admin, auditor,
// approver): its grants deny every data action on their subtree.
func IsTrustRole(r Role) bool {
	for _, t := range trustRoles {
		if r == t {
			return true
		}
	}
	return false
}

// IsDataRole reports whether a grant of r gives data: r is one of the
// census's data roles (team_leader, supervisor, researcher, processor),
// or the engine's role policy lets r read fields, tables or extracts.
// Deciding by the policy of the moment alone would let an administrator
// narrow the policy, grant the role unconfirmed, and widen it back.
func (e *Engine) IsDataRole(r Role) bool {
	for _, d := range dataRoles {
		if r == d {
			return true
		}
	}
	return e.RevealsData(r)
}

// DataActions returns the actions that write, list or reveal census
// records or release tables of them. The slice is new on each call.
func DataActions() []Action {
	out := make([]Action, len(dataActions))
	copy(out, dataActions[:])
	return out
}

// RevealsData reports whether the engine's role policy lets role r (with
// what it inherits) perform an action that shows field values or tables:
// such a role is a data role, whose grants an approver must confirm.
// Unknown roles reveal nothing.
func (e *Engine) RevealsData(r Role) bool {
	ri, ok := roleIndex(r)
	if !ok {
		return false
	}
	for _, a := range revealing {
		ai, _ := actionIndex(a)
		if e.rulings[ri][ai].v == allowed {
			return true
		}
	}
	return false
}

// TrustViolations lists, as "role action" pairs, every data action the
// role policy allows a trust role (admin, auditor, approver), and every
// action of the second pair of eyes (confirming grants and form
// versions, approving extracts and ledger shares, making publication
// points) it allows the admin. A policy with any is refused by the broker: it would let the
// people who run and oversee the vault see what they oversee, or an
// administrator confirm what an administrator proposed.
func (e *Engine) TrustViolations() []string {
	var out []string
	ri, _ := roleIndex(Admin)
	for _, a := range fourEyes {
		ai, _ := actionIndex(a)
		if e.rulings[ri][ai].v == allowed {
			out = append(out, string(Admin)+" "+string(a))
		}
	}
	for _, r := range trustRoles {
		ri, _ := roleIndex(r)
		for _, a := range dataActions {
			ai, _ := actionIndex(a)
			if e.rulings[ri][ai].v == allowed {
				out = append(out, string(r)+" "+string(a))
			}
		}
	}
	return out
}
