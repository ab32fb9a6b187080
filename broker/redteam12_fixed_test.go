package broker_test

// Red team of issue 12 (dp tables, the privacy ledger): the weaknesses
// the red team found in the finished channel, each an attack that
// succeeded then and fails now (broker/redteam12_test.go holds the
// attacks that never did).

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/tables"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
)

// rt12EthnicityIn counts the persons of each ethnicity code the vault's
// synthetic households put in the EAs of commune (the ground truth the
// attack is checked against; the attacker never needs it).
func rt12EthnicityIn(t *testing.T, tv *tableVault, commune string) map[int64]int {
	t.Helper()
	out := map[int64]int{}
	for i := range tv.n {
		b, _, err := tv.gen.Household(i)
		if err != nil {
			t.Fatal(err)
		}
		s, err := form.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s.Area, commune+"-") {
			continue
		}
		for _, p := range s.Persons {
			if e, ok := p["ethnicity"].Int(); ok {
				out[e]++
			}
		}
	}
	return out
}

// rt12Inner is the inner (non-margin) cells of a released table's JSON
// body: each cell's value, or -1 when suppressed.
func rt12Inner(t *testing.T, body []byte) []float64 {
	t.Helper()
	var tab struct {
		Cells []struct {
			Row        []string `json:"row"`
			Col        []string `json:"col"`
			Value      *float64 `json:"value"`
			Suppressed bool     `json:"suppressed"`
		} `json:"cells"`
	}
	if err := json.Unmarshal(body, &tab); err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, c := range tab.Cells {
		if slices.Contains(c.Row, tables.Margin) || slices.Contains(c.Col, tables.Margin) {
			continue
		}
		switch {
		case c.Suppressed || c.Value == nil:
			out = append(out, -1)
		default:
			out = append(out, *c.Value)
		}
	}
	return out
}

// TestRT12ShredRepeatIsAMembershipOracle: after an analytic shred, the
// repeat of a dp query charged before it was refused (point_changed, as
// first built) exactly when the shredded households were in its cells with a count
// the noise did not clamp to 0: the refusal is a noise-free function of
// the true data. A researcher who charged, before the shred, one cheap
// table per hypothesis (ρ can be 0.000001: 400,000 of them in one
// researcher share) learns afterwards, exactly and for free (a repeat
// is looked up before the ledger, and anyone's charged query can be
// repeated), which hypotheses held — e.g. "someone of ethnicity E lived
// in commune B". Here: two tables of commune B, the same but for the
// ethnicity filtered on — one of an ethnicity nobody there has, one of
// the commonest — released before commune B's analytic keys are
// shredded; their repeats after it must not be told apart by whether
// the shredded households were in them. Now both are new questions.
func TestRT12ShredRepeatIsAMembershipOracle(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 200)
	yes, no := rt12YesNo(t, rt12EthnicityIn(t, tv, communeB))
	ask := func(code int64, rho, point string) (*broker.TableRelease, error) {
		b := fmt.Sprintf(`{"project":"fert","purpose":"p","rows":["sex"],"rho":%q,"filter":{"area":[%q],"ethnicity":[%d]}}`, rho, communeB, code)
		if point != "" {
			b = strings.Replace(b, `"purpose":"p"`, `"purpose":"p","as_of":"`+point+`"`, 1)
		}
		return tv.request("rita", b, broker.TableOpts{})
	}
	// Before the shred: both charged (ρ 0.05 for the commonest, so its
	// noisy counts stay clear of 0; 0.02 for the other).
	y1, err := ask(yes, "0.05", "")
	if err != nil {
		t.Fatal(err)
	}
	n1, err := ask(no, "0.02", "")
	if err != nil {
		t.Fatal(err)
	}
	if !rt12AnyPositive(t, y1.Body) {
		t.Skip("the noise clamped every cell of the commonest ethnicity to 0 (improbable): nothing to see this run")
	}

	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, broker.AreaCode(communeB)); err != nil {
		t.Fatal(err)
	}
	// After it, both are new questions: fresh noise, charged, released —
	// whatever the shredded households were.
	y2, errYes := ask(yes, "0.05", y1.Point)
	n2, errNo := ask(no, "0.02", n1.Point)
	if errYes != nil || errNo != nil {
		t.Fatalf("after commune %s's analytic shred, the repeat of a table holding shredded households answers %q and the same table of an ethnicity nobody there had answers %q: "+
			"the outcome tells, without noise, whether anyone matching a filter lived in the shredded commune", communeB, outcome(errYes), outcome(errNo))
	}
	if y2.Repeat || n2.Repeat {
		t.Fatalf("a question asked again after a shred under it was answered as a repeat (%v, %v): the same noise over other data", y2.Repeat, n2.Repeat)
	}
}

// TestRT12ShredMakesTomorrowsRepeatsAnOracle: since 5fcaae3 a scheduled
// point is named in the query by its deposit point, and an analytic
// shred deposits nothing: the day after a shred, the day's new point
// sees the same deposit point as the day before, so every query charged
// the day before is a "repeat" over other data. The attacker need not
// even name the old point: asking yesterday's tables again today gives
// the same noise-free bit per table (point_changed exactly when shredded
// households were in an unclamped cell) — and everyone else's queries of
// yesterday were refused today, until something was deposited. Now the
// shreds are part of the query: yesterday's questions are new ones.
func TestRT12ShredMakesTomorrowsRepeatsAnOracle(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tv := newBareTableVault(t, 200, broker.Opts{PointK: tablePointK, PointInterval: -1, Now: clock})
	truth := rt12EthnicityIn(t, tv, communeB)
	yes, no := rt12YesNo(t, truth)
	ask := func(code int64, rho string) (*broker.TableRelease, error) {
		return tv.request("rita", fmt.Sprintf(`{"project":"fert","purpose":"p","rows":["sex"],"rho":%q,"filter":{"area":[%q],"ethnicity":[%d]}}`, rho, communeB, code), broker.TableOpts{})
	}
	y1, err := ask(yes, "0.05")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ask(no, "0.02"); err != nil {
		t.Fatal(err)
	}
	if !rt12AnyPositive(t, y1.Body) {
		t.Skip("the noise clamped every cell of the commonest ethnicity to 0 (improbable)")
	}
	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, broker.AreaCode(communeB)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	_, errYes := ask(yes, "0.05")
	_, errNo := ask(no, "0.02")
	if errYes != nil || errNo != nil {
		t.Fatalf("the day after commune %s's shred (nothing deposited), yesterday's table holding shredded households answers %q and the one of an ethnicity nobody there had answers %q: "+
			"asking yesterday's questions again is a noise-free membership oracle", communeB, outcome(errYes), outcome(errNo))
	}
}

// rt12YesNo picks the commonest ethnicity of truth and one nobody has.
func rt12YesNo(t *testing.T, truth map[int64]int) (yes, no int64) {
	t.Helper()
	yes, no = -1, -1
	for code, n := range truth {
		if yes < 0 || n > truth[yes] || (n == truth[yes] && code < yes) {
			yes = code
		}
	}
	for code := int64(1); code <= 55; code++ {
		if truth[code] == 0 {
			no = code
			break
		}
	}
	if yes < 0 || no < 0 || truth[yes] < 30 {
		t.Fatalf("no usable ethnicities in the synthetic commune: %v", truth)
	}
	return yes, no
}

// rt12AnyPositive reports whether a table may show a count the noise did
// not clamp to 0 (a suppressed cell may hide one).
func rt12AnyPositive(t *testing.T, body []byte) bool {
	for _, v := range rt12Inner(t, body) {
		if v != 0 {
			return true
		}
	}
	return false
}

func outcome(err error) string {
	if err == nil {
		return "released"
	}
	if c := errCode(err); c != "" {
		return c
	}
	return err.Error()
}

// TestRT12ReplayAfterShredReturnsSameNoiseTable: `censusvault table
// replay` of a dp release made before an analytic shred recomputes the
// table with the release's seed over the data left after the shred and
// hands the table back (ReplayResult.Table, written by --out) although
// the digests differ. The same noise over other data is what a
// researcher is never given: released minus replayed is the
// shredded households' exact contribution to every unclamped cell —
// recovered after their keys were destroyed. A mismatched dp replay must
// not hand back the recomputed values.
func TestRT12ReplayAfterShredReturnsSameNoiseTable(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 200)
	// The district by sex: commune B is a part of it, so the cells stay
	// large (unsuppressed) after B is shredded.
	rel := tv.mustDP("rita", `{"project":"fert","purpose":"p","rows":["sex"],"rho":"0.1","filter":{"area":["437"]}}`)
	if _, err := tv.b.Shred(ctx, actor, crypto.Analytic, broker.AreaCode(communeB)); err != nil {
		t.Fatal(err)
	}
	res, err := tv.b.ReplayTable(ctx, "cli:auditor", rel.AuditIndex)
	if err != nil {
		return // refusing the replay is a fix too
	}
	if !res.Match && len(res.Table) > 0 {
		// The attack: released - replayed, cell by cell, against the
		// true persons of commune B by sex.
		bySex := map[int64]float64{}
		for i := range tv.n {
			b, _, _ := tv.gen.Household(i)
			s, err := form.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(s.Area, communeB+"-") {
				for _, p := range s.Persons {
					if x, ok := p["sex"].Int(); ok {
						bySex[x]++
					}
				}
			}
		}
		before, after := rt12Inner(t, rel.Body), rt12Inner(t, res.Table)
		exact := 0
		for i := range min(len(before), len(after)) {
			if before[i] >= 0 && after[i] >= 0 && before[i]-after[i] == bySex[int64(i+1)] {
				exact++
			}
		}
		t.Fatalf("a dp replay after the shred returned the table recomputed with the release's noise over the data left (%d bytes): "+
			"released minus replayed equals the shredded commune's true persons by sex, exactly, in %d of %d cells", len(res.Table), exact, len(before))
	}
}

// TestRT12StaleProposalRevertsNewerShare: two proposals for the same
// share wait side by side; the newer (a cut, say after an incident) is
// approved; then the older (a raise) is approved too — and wins, since
// shares follow the latest approval, not the latest proposal. Approving
// a proposal older than the share's last approved change should be
// refused (or proposals should be withdrawn when a newer one for the
// same share is approved).
func TestRT12StaleProposalRevertsNewerShare(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 20)
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	tv.addUser(broker.NewUser{Name: "appr2", Role: policy.Approver, Area: keyNation})
	raise, err := tv.b.ProposeShare(ctx, tv.caller("adm"), broker.ShareCommune, "", "10", "a big survey")
	if err != nil {
		t.Fatal(err)
	}
	cut, err := tv.b.ProposeShare(ctx, tv.caller("adm"), broker.ShareCommune, "", "1", "incident: halve the cap")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tv.b.ApproveShare(ctx, tv.caller("appr"), cut.Seq); err != nil {
		t.Fatal(err)
	}
	_, err = tv.b.ApproveShare(ctx, tv.caller("appr2"), raise.Seq)
	l, lerr := tv.b.Ledger(ctx)
	if lerr != nil {
		t.Fatal(lerr)
	}
	for _, s := range l.Shares {
		if s.Kind == broker.ShareCommune && s.Rho != "1" {
			t.Fatalf("the commune cap is %s after the older proposal %d (ρ=10) was approved after the newer %d (ρ=1) (approval error: %v): a stale proposal undid a newer change",
				s.Rho, raise.Seq, cut.Seq, err)
		}
	}
}

// TestRT12ShareForNobody: an admin may propose — and an approver approve
// — a researcher share for a name no user has. The raised share waits in
// the ledger for whoever is later created under that name (an admin
// alone creates users), so the four-eyes approval was of a share nobody
// held, and the new account starts with it. A researcher share should
// name an existing researcher.
func TestRT12ShareForNobody(t *testing.T) {
	ctx := context.Background()
	tv := newTableVault(t, 20)
	tv.addUser(broker.NewUser{Name: "adm", Role: policy.Admin, Area: keyNation})
	_, err := tv.b.ProposeShare(ctx, tv.caller("adm"), broker.ShareResearcher, "ghost", "2", "for a future hire")
	if err == nil {
		t.Fatal("a researcher share was proposed for a user who does not exist")
	}
}
