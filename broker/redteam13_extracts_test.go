package broker_test

// The red team's findings on extracts (issue 13), as attacks the vault
// now stops: an administrator registering an environment with its own
// recipient (the first step of TestRedteam13ReissueExfiltratesExtract),
// an administrator approving an extract, extract numbers told apart from
// the answers to approve and download (finding 11/12), and a stolen
// processor token starting first passes without end, which go on after
// the client hung up (finding 9).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// TestRedTeam13AdminRegistersOwnEnvironment: an administrator over the
// API registers an environment whose recipient is its own key — with the
// tokens of a processor and an approver (reissued to itself, or
// colluding) it would then extract the district to that key. Refused 403
// host_only, audited, before anything is stored; the host operator
// registers environments, and the approver is shown the recipient's start
// and fingerprint with each extract.
func TestRedTeam13AdminRegistersOwnEnvironment(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	ev.depositAll(1)
	mallory, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	admin := broker.APIOperator(ev.caller("admin"))
	e := ev.oneEvent(func() {
		_, err = ev.b.AddEnvironment(ctx, admin, broker.NewEnvironment{Name: "centre-mirror", Recipient: mallory.Recipient().String(), Classes: []string{"analytic"}})
	})
	if err == nil {
		// Go on as the red team did, with a colluding processor and
		// approver, to show what the registration is worth.
		x, perr := ev.propose("proc", broker.ExtractRequest{Environment: "centre-mirror", Areas: []string{keyDistrict}, Classes: []string{"analytic"}})
		if perr == nil && ev.approve("appr", x.Seq) == nil {
			_, ct, derr := ev.download("proc", x.Seq)
			if derr == nil {
				plain := decryptWith(t, ct, mallory)
				t.Fatalf("HOLE: admin registered environment centre-mirror to its own key; the district's extract (%d bytes of plaintext) decrypts with it", len(plain))
			}
		}
		t.Fatalf("HOLE: admin registered environment centre-mirror to its own key over the API")
	}
	wantCode(t, "admin registers an environment over the API", err, broker.Permission, "host_only")
	if !strings.Contains(err.Error(), "censusvault extract env add") || !strings.Contains(err.Error(), "--data DIR") {
		t.Errorf("the refusal does not say where to register: %v", err)
	}
	if e.Action != "extract.environment_add" || e.Actor != "user:admin" || e.Decision != "deny" || e.Outcome != "denied" ||
		e.Reason != "host_only" || strings.Contains(e.Reason+e.Rule+strings.Join(e.Resources, " "), mallory.Recipient().String()) {
		t.Errorf("event of the refusal: %+v", e)
	}
	envs, err := ev.b.Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs.Environments) != 1 || envs.Environments[0].Name != "centre" {
		t.Fatalf("environments after the refusal: %+v", envs.Environments)
	}
	// Anyone else over the API is refused as before.
	for _, u := range []string{"proc", "appr", "auditor"} {
		_, err := ev.b.AddEnvironment(ctx, broker.APIOperator(ev.caller(u)), broker.NewEnvironment{Name: "by-" + u, Recipient: mallory.Recipient().String()})
		wantCode(t, u+" registers an environment", err, broker.Permission, "permission_denied")
	}
	// Retiring over the API only takes access away: still allowed.
	if _, err := ev.b.RetireEnvironment(ctx, admin, "centre"); err != nil {
		t.Errorf("admin retires an environment: %v", err)
	}

	// Where an extract goes is shown to the approver: the start and the
	// SHA-256 of the environment's recipient, in the proposal, the
	// approval and the list.
	if _, err := ev.b.AddEnvironment(ctx, broker.HostOperator(actor), broker.NewEnvironment{Name: "centre2", Recipient: ev.id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	rcpt := ev.id.Recipient().String()
	sum := sha256.Sum256([]byte(rcpt))
	fp := hex.EncodeToString(sum[:])
	x := ev.mustPropose("proc", broker.ExtractRequest{Environment: "centre2", Areas: []string{communeA}})
	a, err := ev.b.ApproveExtract(ctx, ev.caller("appr"), x.Seq)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ev.b.ExtractsFor(ctx, ev.caller("appr"))
	if err != nil || len(l.Extracts) != 1 {
		t.Fatalf("list: %+v, %v", l, err)
	}
	for what, got := range map[string]broker.ExtractInfo{"proposal": *x, "approval": *a, "list": l.Extracts[0]} {
		if got.RecipientStart != rcpt[:20]+"…" || got.RecipientSHA256 != fp {
			t.Errorf("the %s shows recipient %q, sha256 %q; want %q, %s", what, got.RecipientStart, got.RecipientSHA256, rcpt[:20]+"…", fp)
		}
	}
}

// TestRedTeam13AdminApprovesExtract: an administrator who also holds an
// approver grant (it may give itself one on the host, or an earlier
// admin gave it) approves an extract: it would be the second pair of
// eyes over a proposal it could have arranged (the processor's token
// reissued, the environment chosen). Refused 403 four_eyes, audited,
// and the extract stays pending; an approver who may not administer
// approves it.
func TestRedTeam13AdminApprovesExtract(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	ev.depositAll(1)
	if err := ev.b.Grant(ctx, actor, "admin", policy.Grant{Role: policy.Approver, Area: keyNation}); err != nil {
		t.Fatal(err)
	}
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{keyDistrict}})
	var err error
	e := ev.oneEvent(func() { _, err = ev.b.ApproveExtract(ctx, ev.caller("admin"), x.Seq) })
	if err == nil {
		t.Fatalf("HOLE: admin (with an approver grant) approved extract %d of district %s", x.Seq, keyDistrict)
	}
	wantCode(t, "an admin approves", err, broker.Permission, "four_eyes")
	if e.Action != "extract.approve" || e.Decision != "deny" || e.Outcome != "refused" || e.Reason != "four_eyes" || !strings.Contains(e.Rule, "admin") {
		t.Errorf("event of the refusal: %+v", e)
	}
	if _, _, err := ev.download("proc", x.Seq); broker.KindOf(err) != broker.Conflict {
		t.Errorf("the extract was released after the admin's approval: %v", err)
	}
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Errorf("an approver who may not administer approves: %v", err)
	}
}

// TestRedTeam13ExtractSeqOracle (the red team's finding, as it wrote it):
// a processor or approver of one commune tells an extract outside its
// scope from one that does not exist, and so learns how many extracts
// the whole country has proposed. Both are now answered alike.
func TestRedTeam13ExtractSeqOracle(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeB}})
	_, errIn := ev.b.DownloadExtract(ctx, ev.caller("proc-a"), x.Seq)
	_, errOut := ev.b.DownloadExtract(ctx, ev.caller("proc-a"), x.Seq+1)
	_, aIn := ev.b.ApproveExtract(ctx, ev.caller("appr-a"), x.Seq)
	_, aOut := ev.b.ApproveExtract(ctx, ev.caller("appr-a"), x.Seq+1)
	if broker.KindOf(errIn) != broker.KindOf(errOut) || broker.KindOf(aIn) != broker.KindOf(aOut) {
		t.Fatalf("HOLE (low): for a processor of %s, extract %d (of %s) is %v but %d is %v; for an approver of %s: %v vs %v",
			communeA, x.Seq, communeB, broker.KindOf(errIn), x.Seq+1, broker.KindOf(errOut), communeA, broker.KindOf(aIn), broker.KindOf(aOut))
	}
}

// TestRedTeam13ExtractSeqOracleExact: the unknown extract's answer is the
// out-of-scope one to the byte (but the number asked), at a number just
// past the last and one far beyond, each audited; a processor or
// approver of the whole tree, for whom nothing is out of scope, is told
// the extract does not exist.
func TestRedTeam13ExtractSeqOracleExact(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeB}})
	tok, err := ev.b.AddUser(ctx, actor, broker.NewUser{Name: "proc-vn", Role: policy.Processor, Area: keyNation})
	if err != nil {
		t.Fatal(err)
	}
	ev.tokens["proc-vn"] = tok.Reveal()
	type answer struct {
		kind      broker.Kind
		code, msg string
	}
	ask := func(user string, approve bool, seq int64) answer {
		t.Helper()
		var err error
		e := ev.oneEvent(func() {
			if approve {
				_, err = ev.b.ApproveExtract(ctx, ev.caller(user), seq)
			} else {
				_, err = ev.b.DownloadExtract(ctx, ev.caller(user), seq)
			}
		})
		var be *broker.Error
		if !errors.As(err, &be) {
			t.Fatalf("%s asks for extract %d: %v", user, seq, err)
		}
		if e.Outcome == "ok" || e.Actor != "user:"+user {
			t.Errorf("event of %s asking for extract %d: %+v", user, seq, e)
		}
		return answer{be.Kind, be.ErrorCode(), strings.ReplaceAll(be.Msg, " "+strconv.FormatInt(seq, 10)+":", " N:")}
	}
	for _, c := range []struct {
		user    string
		approve bool
	}{{"proc-a", false}, {"appr-a", true}} {
		out := ask(c.user, c.approve, x.Seq)
		if out.kind != broker.Permission {
			t.Fatalf("%s on extract %d outside its scope: %+v", c.user, x.Seq, out)
		}
		for _, seq := range []int64{x.Seq + 1, 1 << 40} {
			if got := ask(c.user, c.approve, seq); got != out {
				t.Errorf("HOLE: %s on unknown extract %d: %+v; outside its scope: %+v", c.user, seq, got, out)
			}
		}
	}
	wantCode(t, "an approver of the whole tree approves an unknown extract", ev.approve("appr", x.Seq+1), broker.NotFound, "no_such_extract")
	_, _, err = ev.download("proc-vn", x.Seq+1)
	wantCode(t, "a processor of the whole tree downloads an unknown extract", err, broker.NotFound, "no_such_extract")
}

// gateCtx is a context whose first Err blocks until released: the
// first pass of a download asks Err for every household it reads (the
// rest of a download runs in a context that never asks), so a download
// given one waits in its first pass, holding its place, for as long as
// the test wants.
type gateCtx struct {
	context.Context
	once     sync.Once
	entered  chan struct{}
	released chan struct{}
}

func newGate(parent context.Context) *gateCtx {
	return &gateCtx{Context: parent, entered: make(chan struct{}), released: make(chan struct{})}
}

func (g *gateCtx) Err() error {
	g.once.Do(func() {
		close(g.entered)
		<-g.released
	})
	return g.Context.Err()
}

// hold starts user's download of seq in a gate and waits until it is in
// its first pass; release lets it go on, and done says how it ended.
func (ev *extractVault) hold(user string, seq int64) (g *gateCtx, done chan error) {
	ev.t.Helper()
	g, done = newGate(context.Background()), make(chan error, 1)
	c := ev.caller(user)
	go func() {
		_, err := ev.b.DownloadExtract(g, c, seq)
		done <- err
	}()
	select {
	case <-g.entered:
	case err := <-done:
		ev.t.Fatalf("%s's download of %d ended before its first pass: %v", user, seq, err)
	case <-time.After(20 * time.Second):
		ev.t.Fatalf("%s's download of %d never reached its first pass", user, seq)
	}
	return g, done
}

// TestRedTeam13ExtractDownloadCap: with a stolen processor token, start
// download after download of the district (each first pass reads and
// decrypts every household; nationally, up to two hours). One per user
// is in its first pass at a time and two over the broker: past either
// the download is 429 rate_limited with a Retry-After, audited, before
// anything is read. Once a first pass ends, its places are free.
func TestRedTeam13ExtractDownloadCap(t *testing.T) {
	ev := newExtractVault(t, "")
	ctx := context.Background()
	ev.depositAll(2)
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{keyDistrict}})
	y := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{communeA}})
	for _, seq := range []int64{x.Seq, y.Seq} {
		if err := ev.approve("appr", seq); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(user string, seq int64, what string) {
		t.Helper()
		var err error
		e := ev.oneEvent(func() { _, err = ev.b.DownloadExtract(ctx, ev.caller(user), seq) })
		var be *broker.Error
		if !errors.As(err, &be) || be.Kind != broker.RateLimited {
			t.Fatalf("HOLE: %s: %s's download of %d while others are prepared: %v", what, user, seq, err)
		}
		if be.ErrorCode() != "rate_limited" || be.RetryAfter <= 0 {
			t.Errorf("%s: %s, Retry-After %v", what, be.ErrorCode(), be.RetryAfter)
		}
		if e.Action != "extract.download" || e.Outcome != "rate_limited" || e.ReleaseDigest != "" || !strings.HasSuffix(e.Reason, "nothing read") {
			t.Errorf("%s: event %+v", what, e)
		}
	}
	g1, done1 := ev.hold("proc", x.Seq)
	refused("proc", x.Seq, "one at a time per user")
	refused("proc", y.Seq, "one at a time per user, another extract")
	g2, done2 := ev.hold("proc2", x.Seq)
	refused("proc-a", y.Seq, "two at a time on the broker")
	close(g1.released)
	close(g2.released)
	for _, done := range []chan error{done1, done2} {
		if err := <-done; err != nil {
			t.Fatalf("a held download: %v", err)
		}
	}
	// Their places are free again, after an error too.
	ev.mustDownload("proc", y.Seq)
	ev.mustDownload("proc-a", y.Seq)
	if _, _, err := ev.download("proc", 1<<40); broker.KindOf(err) != broker.Permission {
		t.Fatal(err)
	}
	ev.mustDownload("proc", x.Seq)

	// The broker's cap is Opts.MaxExtractPreparing: at 1, one user's
	// first pass holds everyone else's.
	b1, err := broker.New(ctx, broker.Opts{Store: ev.store, Keys: mustKeys(t, ev.dir), Now: ev.clock.Now,
		Limits: broker.Limits{UserRate: -1, RefusalBurst: 1 << 20}, MaxExtractPreparing: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b1.Close(context.Background()) })
	one := &extractVault{t: t, dir: ev.dir, store: ev.store, b: b1, clock: ev.clock, tokens: ev.tokens, id: ev.id}
	g, done := one.hold("proc", x.Seq)
	refused1 := func() error { _, err := b1.DownloadExtract(ctx, one.caller("proc-a"), y.Seq); return err }()
	close(g.released)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantCode(t, "a second user's download at a cap of 1", refused1, broker.RateLimited, "rate_limited")
	if _, err := broker.New(ctx, broker.Opts{Store: ev.store, Keys: mustKeys(t, ev.dir), MaxExtractPreparing: -1}); err == nil {
		t.Error("a negative cap of downloads was accepted")
	}
}

// TestRedTeam13ExtractDownloadClientGone: the client hangs up during the
// first pass of a download. The pass stops (it does not read the rest of
// the district for nobody), the download is audited as aborted without
// a digest, and the user may download again at once.
func TestRedTeam13ExtractDownloadClientGone(t *testing.T) {
	ev := newExtractVault(t, "")
	ev.depositAll(3)
	x := ev.mustPropose("proc", broker.ExtractRequest{Areas: []string{keyDistrict}})
	if err := ev.approve("appr", x.Seq); err != nil {
		t.Fatal(err)
	}
	client, hangUp := context.WithCancel(context.Background())
	g := newGate(client)
	c := ev.caller("proc")
	head := ev.head()
	done := make(chan error, 1)
	go func() {
		_, err := ev.b.DownloadExtract(g, c, x.Seq)
		done <- err
	}()
	select {
	case <-g.entered:
	case err := <-done:
		t.Fatalf("HOLE: the first pass never asked whether the client is still there (download: %v)", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the download never reached its first pass")
	}
	hangUp()
	close(g.released)
	err := <-done
	if err == nil {
		t.Fatal("HOLE: the first pass ran to its end for a client that had hung up")
	}
	evs := ev.events(head)
	if len(evs) != 1 || evs[0].Action != "extract.download" || evs[0].Outcome != "aborted" || evs[0].ReleaseDigest != "" {
		t.Fatalf("events of the abandoned download: %s", showEvents(evs))
	}
	// A client gone before the download started: decided and recorded
	// all the same.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var err2 error
	e := ev.oneEvent(func() { _, err2 = ev.b.DownloadExtract(gone, c, x.Seq) })
	if err2 == nil || e.Outcome != "aborted" || e.ReleaseDigest != "" {
		t.Errorf("a download for a client gone already: %v, event %+v", err2, e)
	}
	_, err2 = ev.b.DownloadExtract(gone, c, x.Seq+1)
	wantCode(t, "an unknown extract for a client gone already", err2, broker.Permission, "permission_denied")
	ev.mustDownload("proc", x.Seq)
}
