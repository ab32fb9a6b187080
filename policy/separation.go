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
// role policy allows a trust role (admin, auditor, approver). A policy
// with any is refused by the broker: it would let the people who run
// and oversee the vault see what they oversee.
func (e *Engine) TrustViolations() []string {
	var out []string
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
