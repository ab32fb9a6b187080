package broker_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// adminVault is a key vault with an admin, two approvers and an auditor,
// each a caller over the API.
type adminVault struct {
	*keyVault
	admin, approver, approver2, auditor *broker.Caller
	office                              *age.X25519Identity // the field office's identity, tokens are encrypted to it
}

func newAdminVault(t *testing.T) *adminVault {
	t.Helper()
	kv := newKeyVault(t, keyVaultOpts{})
	av := &adminVault{keyVault: kv}
	for _, u := range []broker.NewUser{
		{Name: "admin-1", Role: policy.Admin, Area: keyNation},
		{Name: "approver-1", Role: policy.Approver, Area: keyNation},
		{Name: "approver-2", Role: policy.Approver, Area: keyNation},
		{Name: "auditor-1", Role: policy.Auditor, Area: keyNation},
	} {
		tok, err := kv.b.AddUser(context.Background(), actor, u)
		if err != nil {
			t.Fatal(err)
		}
		kv.tokens[string(u.Name)] = tok.Reveal()
	}
	av.admin, av.approver, av.approver2, av.auditor = kv.caller("admin-1"), kv.caller("approver-1"), kv.caller("approver-2"), kv.caller("auditor-1")
	var err error
	if av.office, err = age.GenerateX25519Identity(); err != nil {
		t.Fatal(err)
	}
	// The host operator registers the field office's recipient: tokens
	// made over the API go there and nowhere else.
	if err := kv.b.SetTokenRecipient(context.Background(), broker.HostOperator(actor), av.office.Recipient().String()); err != nil {
		t.Fatal(err)
	}
	return av
}

// open decrypts an import's tokens with the field office's identity and
// remembers them.
func (av *adminVault) open(sealed []byte) map[string]string {
	av.t.Helper()
	r, err := age.Decrypt(bytes.NewReader(sealed), av.office)
	if err != nil {
		av.t.Fatalf("the field office cannot decrypt the tokens: %v", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		av.t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(plain)).ReadAll()
	if err != nil {
		av.t.Fatal(err)
	}
	out := map[string]string{}
	for _, rec := range recs[1:] {
		out[rec[0]] = rec[1]
		av.tokens[rec[0]] = rec[1]
	}
	return out
}

func (av *adminVault) add(u broker.NewUser) *broker.UserImport {
	av.t.Helper()
	res, err := av.b.ImportUsers(context.Background(), broker.APIOperator(av.admin), []broker.NewUser{u}, av.office.Recipient().String())
	if err != nil {
		av.t.Fatalf("add %s: %v", u.Name, err)
	}
	av.open(res.Sealed)
	return res
}

// TestAdminCannotReachDataByCreatingUser is the attack of an
// administrator who creates a team leader (whose token the admin might
// route to themself) to read records: the user exists but can do nothing
// until an approver confirms the grant; the admin cannot confirm it, nor
// can the approver the grant is for.
func TestAdminCannotReachDataByCreatingUser(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	res := av.add(broker.NewUser{Name: "tl-1", Role: policy.TeamLeader, Area: communeA})
	if res.Active != 0 || len(res.Pending) != 1 {
		t.Fatalf("a team leader made by an admin: active %d, pending %v; want the grant pending", res.Active, res.Pending)
	}
	tl := av.caller("tl-1")
	if len(tl.Grants) != 0 {
		t.Fatalf("the new team leader holds %v before confirmation", tl.Grants)
	}
	if _, err := av.b.ListSubmissions(ctx, tl, communeA, broker.ListOpts{}); broker.KindOf(err) != broker.Permission {
		t.Fatalf("unconfirmed team leader lists submissions: %v", err)
	}
	// The admin cannot confirm: not an approver.
	if _, err := av.b.ConfirmGrant(ctx, av.admin, res.Pending[0]); broker.KindOf(err) != broker.Permission {
		t.Fatalf("admin confirms a grant: %v", err)
	}
	// An approver who proposed cannot confirm its own proposal.
	res2 := av.add(broker.NewUser{Name: "sup-1", Role: policy.Supervisor, Area: keyDistrict})
	if _, err := av.b.ConfirmGrant(ctx, av.approver, res2.Pending[0]); err != nil {
		t.Fatal(err)
	}
	// A grant proposed for an approver cannot be confirmed by that approver.
	ch, err := av.b.ChangeGrant(ctx, broker.APIOperator(av.admin), "approver-2", policy.Grant{Role: policy.Supervisor, Area: keyDistrict}, false)
	if err != nil || ch.Active {
		t.Fatalf("grant of supervisor to an approver: %+v, %v; want pending", ch, err)
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver2, ch.Proposal); errCode(err) != "four_eyes" {
		t.Fatalf("approver confirms its own grant: %v, want four_eyes", err)
	}
	// The second pair of eyes confirms: now it holds, on the next request.
	if _, err := av.b.ConfirmGrant(ctx, av.approver, res.Pending[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver2, res.Pending[0]); errCode(err) != "proposal_confirmed" {
		t.Fatalf("confirming twice: %v", err)
	}
	tl = av.caller("tl-1")
	if _, err := av.b.ListSubmissions(ctx, tl, communeA, broker.ListOpts{}); err != nil {
		t.Fatalf("confirmed team leader: %v", err)
	}
	// Roles that reveal nothing hold at once: an enumerator.
	if res := av.add(broker.NewUser{Name: "enum-9", Role: policy.Enumerator, Area: communeA}); res.Active != 1 {
		t.Fatalf("enumerator: %+v", res)
	}
	// A deny holds at once; removing it widens access, so it waits.
	deny := policy.Grant{Role: policy.TeamLeader, Area: ea(communeA, 1), Deny: true}
	if ch, err := av.b.ChangeGrant(ctx, broker.APIOperator(av.admin), "tl-1", deny, false); err != nil || !ch.Active {
		t.Fatalf("deny: %+v, %v", ch, err)
	}
	if ch, err := av.b.ChangeGrant(ctx, broker.APIOperator(av.admin), "tl-1", deny, true); err != nil || ch.Active {
		t.Fatalf("removing a deny: %+v, %v; want pending", ch, err)
	}
	// One person holding both admin and approver proposes and cannot
	// confirm: the second pair of eyes must be another person.
	tok, err := av.b.AddUser(ctx, actor, broker.NewUser{Name: "both", Role: policy.Admin, Area: keyNation})
	if err != nil {
		t.Fatal(err)
	}
	av.tokens["both"] = tok.Reveal()
	if err := av.b.Grant(ctx, actor, "both", policy.Grant{Role: policy.Approver, Area: keyNation}); err != nil {
		t.Fatal(err)
	}
	both := av.caller("both")
	res3, err := av.b.ImportUsers(ctx, broker.APIOperator(both), []broker.NewUser{{Name: "tl-2", Role: policy.TeamLeader, Area: communeA}}, av.office.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := av.b.ConfirmGrant(ctx, both, res3.Pending[0]); errCode(err) != "four_eyes" {
		t.Fatalf("the proposer confirms with its approver grant: %v", err)
	}
	// An auditor administers nothing.
	if _, err := av.b.ImportUsers(ctx, broker.APIOperator(av.auditor), []broker.NewUser{{Name: "x", Role: policy.Enumerator, Area: communeA}}, av.office.Recipient().String()); broker.KindOf(err) != broker.Permission {
		t.Fatalf("auditor adds a user: %v", err)
	}
}

// TestPolicyLoadFourEyes: a role policy proposed over the API holds only
// once an approver confirms, and one letting a trust role see data is
// refused outright.
func TestPolicyLoadFourEyes(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	hostile := policy.DefaultPolicy() + "\np, admin, submission.read_identifying, allow\n"
	hostile = strings.ReplaceAll(hostile, "p, admin, submission.read_identifying, deny\n", "")
	if _, err := av.b.ProposePolicy(ctx, broker.APIOperator(av.admin), hostile); errCode(err) != "trust_role_data" {
		t.Fatalf("hostile policy: %v", err)
	}
	// Steering may now list submissions: proposed, not in force.
	wider := policy.DefaultPolicy() + "\np, steering, submission.list, allow\np, steering, submission.read_analytic, allow\n"
	ch, err := av.b.ProposePolicy(ctx, broker.APIOperator(av.admin), wider)
	if err != nil || ch.Active {
		t.Fatalf("propose: %+v, %v", ch, err)
	}
	if _, err := av.b.ListSubmissions(ctx, av.caller("steering"), keyDistrict, broker.ListOpts{}); broker.KindOf(err) != broker.Permission {
		t.Fatalf("before confirmation: %v", err)
	}
	// The approver is told what it gives: steering becomes a data role.
	ps, err := av.b.Proposals(ctx, broker.APIOperator(av.approver))
	if err != nil {
		t.Fatal(err)
	}
	if last := ps[len(ps)-1]; last.Seq != ch.Proposal || !slices.Equal(last.Widens, []string{"steering"}) {
		t.Fatalf("the approver is shown %+v; want widens [steering]", last)
	}
	if _, err := av.b.ConfirmGrant(ctx, av.approver, ch.Proposal); err != nil {
		t.Fatal(err)
	}
	if _, err := av.b.ListSubmissions(ctx, av.caller("steering"), keyDistrict, broker.ListOpts{}); err != nil {
		t.Fatalf("after confirmation: %v", err)
	}
}

// TestLastAdminCannotBeRemoved: revoking, denying or ungranting the only
// admin is refused; with a second admin it is allowed.
func TestLastAdminCannotBeRemoved(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	op := broker.APIOperator(av.admin)
	adminGrant := policy.Grant{Role: policy.Admin, Area: keyNation}
	if err := av.b.RevokeAs(ctx, op, "admin-1"); errCode(err) != "last_admin" {
		t.Fatalf("revoke the last admin: %v", err)
	}
	if err := broker.Revoke(ctx, av.store, actor, "admin-1"); errCode(err) != "last_admin" {
		t.Fatalf("host revoke of the last admin: %v", err)
	}
	if _, err := av.b.ChangeGrant(ctx, op, "admin-1", adminGrant, true); errCode(err) != "last_admin" {
		t.Fatalf("ungrant the last admin: %v", err)
	}
	if _, err := av.b.ChangeGrant(ctx, op, "admin-1", policy.Grant{Role: policy.Admin, Area: keyNation, Deny: true}, false); errCode(err) != "last_admin" {
		t.Fatalf("deny the last admin: %v", err)
	}
	av.add(broker.NewUser{Name: "admin-2", Role: policy.Admin, Area: keyNation})
	if err := av.b.RevokeAs(ctx, op, "admin-1"); err != nil {
		t.Fatalf("revoke one of two admins: %v", err)
	}
	if _, err := av.b.Authenticate(ctx, "Bearer "+av.tokens["admin-1"], "test"); broker.KindOf(err) != broker.Unauthenticated {
		t.Fatalf("revoked admin still authenticates: %v", err)
	}
}

// TestImportUsers: tokens leave the vault only encrypted to the named
// recipient; they work; each expires by its role's lifetime; a bad row
// changes nothing.
func TestImportUsers(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	file := "user,role,area,expires\nenum-a," + "enumerator," + ea(communeA, 1) + ",\nenum-b,enumerator," + ea(communeA, 2) + ",10d\nsteer-a,steering,VN,\nenum-c,enumerator," + ea(communeA, 2) + ",400d\n"
	rows, err := broker.ParseUserCSV([]byte(file), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := av.b.ImportUsers(ctx, broker.APIOperator(av.admin), rows, av.office.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(res.Sealed, []byte("enum-a")) {
		t.Fatal("the sealed output shows a user name in the clear")
	}
	toks := av.open(res.Sealed)
	if len(toks) != 4 || res.Active != 4 {
		t.Fatalf("tokens %d, active %d", len(toks), res.Active)
	}
	now := time.Now()
	for name, want := range map[string]time.Duration{"enum-a": 60 * 24 * time.Hour, "enum-b": 10 * 24 * time.Hour, "steer-a": 365 * 24 * time.Hour,
		"enum-c": 60 * 24 * time.Hour /* asked 400d: over the API, cut to the role's lifetime */} {
		c := av.caller(name)
		u, err := av.b.User(ctx, c.User)
		if err != nil {
			t.Fatal(err)
		}
		if d := u.Expires.Sub(now); d < want-time.Minute || d > want+time.Minute {
			t.Errorf("%s expires in %s, want %s", name, d, want)
		}
	}
	// A longer expiry than the role's lifetime is cut to it; "never"
	// is the host operator's alone.
	if _, err := av.b.ImportUsers(ctx, broker.APIOperator(av.admin), []broker.NewUser{{Name: "svc", Role: policy.Steering, Area: keyNation, NoExpiry: true}}, av.office.Recipient().String()); broker.KindOf(err) != broker.Invalid {
		t.Fatalf("no expiry over the API: %v", err)
	}
	// All or nothing: the third row names an unknown area.
	before := av.auditHead()
	bad := []broker.NewUser{{Name: "ok-1", Role: policy.Enumerator, Area: communeA}, {Name: "ok-2", Role: policy.Enumerator, Area: communeA}, {Name: "bad", Role: policy.Enumerator, Area: "99999"}}
	if _, err := av.b.ImportUsers(ctx, broker.APIOperator(av.admin), bad, av.office.Recipient().String()); broker.KindOf(err) != broker.Invalid || !strings.Contains(err.Error(), "user 3") {
		t.Fatalf("bad row: %v", err)
	}
	dup := []broker.NewUser{{Name: "ok-1", Role: policy.Enumerator, Area: communeA}, {Name: "enum-a", Role: policy.Enumerator, Area: communeA}}
	if _, err := av.b.ImportUsers(ctx, broker.APIOperator(av.admin), dup, av.office.Recipient().String()); broker.KindOf(err) != broker.Conflict {
		t.Fatalf("existing user: %v", err)
	}
	if _, err := av.b.User(ctx, "ok-1"); broker.KindOf(err) != broker.NotFound {
		t.Fatalf("a refused import left user ok-1: %v", err)
	}
	// Each refusal is one event, of the refusal, with no user in it.
	if evs := av.events(before); len(evs) != 2 || evs[0].Outcome != "invalid" || evs[1].Outcome != "refused" ||
		evs[0].Action != "user.add" || len(evs[0].Resources)+len(evs[1].Resources) != 0 {
		t.Fatalf("two refused imports appended %d events, want one refusal each: %+v", len(evs), evs)
	}
	// Reissue: the old token dies at once, the new one works.
	old := av.tokens["enum-a"]
	sealed, err := av.b.Reissue(ctx, broker.APIOperator(av.admin), "enum-a", av.office.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	av.open(sealed)
	if _, err := av.b.Authenticate(ctx, "Bearer "+old, "test"); broker.KindOf(err) != broker.Unauthenticated {
		t.Fatalf("old token after reissue: %v", err)
	}
	av.caller("enum-a")
}

// TestExplainPastEvent: a deposit allowed yesterday is explained as
// allowed under the policy of its time, with the grant that allowed it,
// after the enumerator has since been denied; the current policy says
// no. Tampering with the grant log is seen as a hash mismatch.
func TestExplainPastEvent(t *testing.T) {
	av := newAdminVault(t)
	ctx := context.Background()
	av.add(broker.NewUser{Name: "enum-x", Role: policy.Enumerator, Area: communeA})
	enumX := av.caller("enum-x")
	av.enum = enumX
	if _, err := av.tryDeposit(av.b, ea(communeA, 1)); err != nil {
		t.Fatal(err)
	}
	evs := av.events(0, "submission.deposit")
	dep := evs[len(evs)-1]
	if _, err := av.b.ChangeGrant(ctx, broker.APIOperator(av.admin), "enum-x", policy.Grant{Role: policy.Enumerator, Area: communeA, Deny: true}, false); err != nil {
		t.Fatal(err)
	}
	now, err := av.b.Explain(ctx, broker.APIOperator(av.auditor), "enum-x", policy.Deposit, broker.AreaCode(ea(communeA, 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	if now.Allow || !strings.Contains(now.Rule, "deny") {
		t.Fatalf("now: %+v", now)
	}
	past, err := av.b.ExplainEvent(ctx, broker.APIOperator(av.auditor), dep.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !past.Allow || !past.HashMatches || !past.Agrees || !strings.Contains(past.Rule, "grant enumerator@"+communeA) {
		t.Fatalf("past event: %+v", past)
	}
	if past.PolicyHash == now.PolicyHash {
		t.Fatal("the policy then and now have the same hash")
	}
	// An enumerator may not ask.
	if _, err := av.b.ExplainEvent(ctx, broker.APIOperator(av.caller("enum")), dep.Index); broker.KindOf(err) != broker.Permission {
		t.Fatalf("enumerator explains: %v", err)
	}
	// Tamper: drop the append-only guard and rewrite the grant that
	// allowed the deposit. The rebuilt policy no longer has the event's
	// hash.
	res, err := broker.VerifyAudit(ctx, av.store, av.b.AuditVerifierKey(), nil)
	if err != nil || res.GrantLogEntries < 6 {
		t.Fatalf("VerifyAudit of an untouched vault: %+v, %v", res, err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(av.dir, sqlite.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DROP TRIGGER grant_log_no_update`, fmt.Sprintf(`UPDATE grant_log SET area = '%s' WHERE user_name = 'enum-x' AND deny = 0`, communeB)} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	forged, err := av.b.ExplainEvent(ctx, broker.APIOperator(av.auditor), dep.Index)
	if err != nil {
		t.Fatal(err)
	}
	if forged.HashMatches {
		t.Fatalf("a rewritten grant log still matches the event's hash: %+v", forged)
	}
	// And the operator's audit verify says so, naming the grant log.
	if _, err := broker.VerifyAudit(ctx, av.store, av.b.AuditVerifierKey(), nil); err == nil || !strings.Contains(err.Error(), "grant log altered") {
		t.Fatalf("VerifyAudit of a rewritten grant log: %v", err)
	}
}
