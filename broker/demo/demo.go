// Package demo runs the vault end to end on the embedded default: the
// census of Hồng Lĩnh town (Hà Tĩnh) after its first 10 days, deposited by
// one enumerator per enumeration area through the real HTTP API, then the
// progress table, some refused requests, and the audit verification.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/broker/synth"
	"github.com/censusvault/censusvault/broker/wire"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
	"golang.org/x/mod/sumdb/note"
)

// Ward is one commune/ward of the town with its plan and the households
// interviewed after 10 days.
type Ward struct {
	Code        string
	Name        string
	Planned     int
	Interviewed int
}

// HongLinh is the seed's table: Thị xã Hồng Lĩnh (district 437 of Hà Tĩnh,
// province 42) after the first 10 days of the 2019 census. Commune codes
// are illustrative.
var HongLinh = []Ward{
	{"18070", "Phường Bắc Hồng", 2465, 1976},
	{"18073", "Phường Nam Hồng", 2350, 1704},
	{"18076", "Phường Trung Lương", 1571, 1312},
	{"18079", "Phường Đức Thuận", 1766, 1289},
	{"18082", "Phường Đậu Liêu", 1888, 1486},
	{"18085", "Xã Thuận Lộc", 1746, 1294},
}

const (
	town     = "437"
	townName = "Thị xã Hồng Lĩnh"
	eaSize   = 120 // households an EA is planned for, about
)

// Opts configure Run.
type Opts struct {
	Dir      string    // data directory (must be empty or absent)
	Out      io.Writer // the report
	Progress io.Writer // progress lines; nil: none
	Clients  int       // concurrent devices; default 8
}

// ea is one enumeration area of the demo.
type ea struct {
	code, ward, wardName string
	planned, interviewed int
}

// Plan splits each ward into EAs of about 120 households and spreads the
// interviewed households over them, never more than an EA's plan.
func Plan(wards []Ward) []ea {
	var out []ea
	for _, w := range wards {
		n := max(1, (w.Planned+eaSize/2)/eaSize)
		left := w.Interviewed
		for i := 0; i < n; i++ {
			p := w.Planned / n
			if i < w.Planned%n {
				p++
			}
			// Share of the interviewed households, the remainder to
			// the first EAs.
			iv := w.Interviewed * p / w.Planned
			out = append(out, ea{code: fmt.Sprintf("%s-%02d", w.Code, i+1), ward: w.Code, wardName: w.Name, planned: p, interviewed: iv})
			left -= iv
		}
		for i := len(out) - n; left > 0; i++ {
			if out[i].interviewed < out[i].planned {
				out[i].interviewed++
				left--
			}
		}
	}
	return out
}

// AreasCSV is the demo's area tree in the import format.
func AreasCSV(wards []Ward) string {
	var b strings.Builder
	b.WriteString("code,parent,level,name,planned_households\n")
	b.WriteString("VN,,nation,Việt Nam,\n42,VN,province,Tỉnh Hà Tĩnh,\n")
	fmt.Fprintf(&b, "%s,42,district,%s,\n", town, townName)
	for _, w := range wards {
		fmt.Fprintf(&b, "%s,%s,commune,%s,\n", w.Code, town, w.Name)
	}
	for _, e := range Plan(wards) {
		fmt.Fprintf(&b, "%s,%s,ea,Địa bàn %s,%d\n", e.code, e.ward, e.code[len(e.ward)+1:], e.planned)
	}
	return b.String()
}

// Run runs the demo.
// demoProject is the research project the demo's researcher works on.
const demoProject = "hl-pyramid-2019"

func Run(ctx context.Context, o Opts) error {
	if o.Clients <= 0 {
		o.Clients = 8
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	out := o.Out
	start := time.Now()
	fmt.Fprintf(out, "censusvault demo — Thị xã Hồng Lĩnh, Hà Tĩnh: census after 10 days\n")
	fmt.Fprintf(out, "vault in %s (embedded SQLite, local age key provider)\n\n", o.Dir)

	// 1. A new vault.
	csv := AreasCSV(HongLinh)
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "areas.csv"), []byte(csv), 0o600); err != nil {
		return err
	}
	tree, err := area.Load(strings.NewReader(csv))
	if err != nil {
		return fmt.Errorf("demo areas: %w", err)
	}
	kp, err := agekey.Create(filepath.Join(o.Dir, agekey.FileName))
	if err != nil {
		return err
	}
	classKeys := map[crypto.Class]crypto.KeyProvider{}
	for _, c := range []crypto.Class{crypto.Identifying, crypto.Analytic} {
		p, err := agekey.Create(filepath.Join(o.Dir, agekey.ClassFileName(string(c))))
		if err != nil {
			return err
		}
		classKeys[c] = p
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(o.Dir, sqlite.FileName), Create: true})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := broker.Init(ctx, broker.InitOpts{Store: st, Keys: kp, Areas: tree, Name: "demo.censusvault", Actor: "cli:demo"}); err != nil {
		return err
	}
	b, err := broker.New(ctx, broker.Opts{Store: st, Keys: kp, ClassKeys: classKeys})
	if err != nil {
		return err
	}

	// 2. Users: an enumerator per EA, a team leader, steering, a
	// researcher and an auditor.
	plan := Plan(HongLinh)
	tokens := map[string]string{}
	proj := broker.NewProject{
		ID: demoProject, Title: "Population of Hồng Lĩnh by sex and age", Purpose: "population pyramid of the town for the district health plan",
		Areas: []broker.AreaCode{town}, Variables: []string{"sex", "age_group5", "ethnicity", "education_level"},
		Expires: time.Now().Add(180 * 24 * time.Hour), Budget: 100000,
	}
	if err := b.AddProject(ctx, "cli:demo", proj); err != nil {
		return fmt.Errorf("add project: %w", err)
	}
	add := func(name string, role policy.Role, code string) error {
		u := broker.NewUser{Name: broker.UserID(name), Role: role, Area: broker.AreaCode(code)}
		if role == policy.Researcher {
			u.Project = demoProject
		}
		tok, err := b.AddUser(ctx, "cli:demo", u)
		if err != nil {
			return fmt.Errorf("add user %s: %w", name, err)
		}
		tokens[name] = tok.Reveal()
		return nil
	}
	for _, e := range plan {
		if err := add("enum-"+e.code, policy.Enumerator, e.code); err != nil {
			return err
		}
	}
	for _, u := range []struct {
		name string
		role policy.Role
		area string
	}{
		{"tl-18070", policy.TeamLeader, "18070"},
		{"steering-437", policy.Steering, town},
		{"researcher-1", policy.Researcher, town},
		{"auditor-1", policy.Auditor, "VN"},
		{"approver-1", policy.Approver, "VN"},
		{"admin-1", policy.Admin, "VN"},
	} {
		if err := add(u.name, u.role, u.area); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "areas: 1 town, %d wards, %d enumeration areas of about %d households; users: %d enumerators, a team leader, steering, a researcher, an auditor, an approver, an admin\n",
		len(HongLinh), len(plan), eaSize, len(plan))

	// 3. The real HTTP server on a loopback port.
	h, err := httpapi.New(httpapi.Opts{Broker: b})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "serving on %s\n\n", base)
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients * 2}}
	newClient := func(user string) *client.Client {
		c, err := client.New(client.Opts{BaseURL: base, Token: tokens[user], HTTP: httpc})
		if err != nil {
			panic(err) // base is ours
		}
		return c
	}
	rcpt, err := newClient("").Recipient(ctx)
	if err != nil {
		return fmt.Errorf("fetch ingest recipient: %w", err)
	}
	fmt.Fprintf(out, "ingest recipient (age, hybrid ML-KEM-768 + X25519): %.40s…\n", rcpt.String())

	// 4. Deposits: every interviewed household, encrypted on the
	// "device", posted by its EA's enumerator.
	type job struct {
		e    ea
		hhNo int
	}
	jobs := make(chan job, 256)
	total := 0
	for _, e := range plan {
		total += e.interviewed
	}
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var first struct {
		sync.Mutex
		id, user string
		ct       []byte
		receipt  broker.Receipt
	}
	var wg sync.WaitGroup
	f := form.Default()
	census, _ := f.Census()
	// The project's one synthetic generator, told where each household
	// goes: the demo places exactly the households of the first ten days.
	gen, err := synth.New(synth.Opts{Seed: 2019, Form: f, EAs: synth.EAs(tree)})
	if err != nil {
		return err
	}
	eaInfo := map[string]synth.AreaInfo{}
	for _, a := range synth.EAs(tree) {
		eaInfo[a.Code] = a
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < o.Clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			clients := map[string]*client.Client{}
			for j := range jobs {
				user := "enum-" + j.e.code
				c := clients[user]
				if c == nil {
					c = newClient(user)
					clients[user] = c
				}
				// Interviewed in the first ten days, in working hours.
				day := census.AddDate(0, 0, j.hhNo%10).Add(time.Duration(8+j.hhNo%10)*time.Hour + time.Duration((j.hhNo*7)%60)*time.Minute)
				plain, _, err := gen.HouseholdAt(synth.Placed{EA: eaInfo[j.e.code], No: j.hhNo, Interviewed: day})
				var id string
				if err == nil {
					id, err = submissionID(plain)
				}
				if err == nil {
					var ct []byte
					ct, err = client.Encrypt(rcpt, plain)
					if err == nil {
						var res *client.DepositResult
						res, err = c.Deposit(dctx, ct)
						if err == nil && j.e.code == plan[0].code && j.hhNo == 1 {
							first.Lock()
							first.id, first.user, first.ct, first.receipt = id, user, ct, res.Receipt
							first.Unlock()
						}
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("deposit %s household %d: %w", j.e.code, j.hhNo, err); cancel() })
					continue
				}
				done.Add(1)
			}
		}(w)
	}
	depStart := time.Now()
	ticker := time.NewTicker(250 * time.Millisecond)
	stopTicker := make(chan struct{})
	go func() {
		for {
			select {
			case <-ticker.C:
				n := done.Load()
				fmt.Fprintf(progress, "\rdepositing: %s/%s households (%.0f/s)   ", viNum(n), viNum(int64(total)), float64(n)/time.Since(depStart).Seconds())
			case <-stopTicker:
				return
			}
		}
	}()
feed:
	for _, e := range plan {
		for hh := 1; hh <= e.interviewed; hh++ {
			select {
			case jobs <- job{e, hh}:
			case <-dctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	ticker.Stop()
	close(stopTicker)
	fmt.Fprintf(progress, "\r%60s\r", "")
	if firstErr != nil {
		return firstErr
	}
	depTime := time.Since(depStart)
	fmt.Fprintf(out, "deposited %s households over HTTP in %.1fs (%.0f/s, %d devices at once), each acknowledged with a signed receipt\n\n",
		viNum(done.Load()), depTime.Seconds(), float64(done.Load())/depTime.Seconds(), o.Clients)

	// 5. The progress table, as the town's steering committee sees it.
	rep, err := newClient("steering-437").Progress(ctx, town, 1)
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	if err := printProgress(out, rep); err != nil {
		return err
	}
	if err := checkProgress(rep); err != nil {
		return err
	}

	// 6. What the vault refuses, and what it repeats.
	fmt.Fprintf(out, "\nrequests the policy refuses (each one is in the audit log):\n")
	enum := newClient("enum-" + plan[0].code)
	_, err = enum.Progress(ctx, "18073", 1)
	fmt.Fprintf(out, "  enumerator of %s asks for progress of Phường Nam Hồng: %s\n", plan[0].code, outcome(err))
	_, err = enum.OpenSubmission(ctx, first.id)
	fmt.Fprintf(out, "  the same enumerator asks to read back a household it deposited: %s\n", outcome(err))
	_, err = newClient("auditor-1").Progress(ctx, "18070", 0)
	fmt.Fprintf(out, "  the auditor asks for progress of Phường Bắc Hồng: %s\n", outcome(err))
	_, err = newClient("researcher-1").OpenSubmission(ctx, first.id)
	fmt.Fprintf(out, "  the researcher asks for a single household: %s\n", outcome(err))
	bad, _ := client.New(client.Opts{BaseURL: base, Token: "not-a-token", HTTP: httpc})
	_, err = bad.Progress(ctx, town, 0)
	fmt.Fprintf(out, "  a request with a made-up token: %s\n", outcome(err))

	// 7. A publication point: the approver freezes the data as it is on
	// the 10th day. Standard tables are computed only at such points.
	pt, err := newClient("approver-1").CreateReleasePoint(ctx, demoPoint)
	if err != nil {
		return fmt.Errorf("publication point: %w", err)
	}
	fmt.Fprintf(out, "\nthe approver makes publication point %s: %d of %d %ss frozen at their new state (each changed by at least %d households), %d kept\n",
		pt.Name, pt.Advanced, pt.Areas, pt.Level, pt.K, pt.Kept)
	_, err = newClient("approver-1").CreateReleasePoint(ctx, "2019-04-11")
	fmt.Fprintf(out, "  a second point straight after: %s\n", codeOf(err))

	// 8. A researcher's standard table: the population pyramid of the
	// town from the catalogue, at the point, with cell-key perturbation
	// and small-cell suppression.
	res0, err := researchTable(ctx, out, newClient("researcher-1"))
	if err != nil {
		return err
	}
	again, err := newClient("researcher-1").RequestTable(ctx, []byte(pyramidRequest), "", false)
	if err != nil {
		return fmt.Errorf("table again: %w", err)
	}
	if !bytes.Equal(again.Body, res0.Body) {
		return errors.New("the same table request gave different bytes")
	}
	fmt.Fprintf(out, "the same request again: identical bytes (%s), %s cells more spent, %s left\n", again.Digest[:19]+"…", viNum(again.Cells), viNum(again.Remaining))
	_, err = newClient("researcher-1").RequestTable(ctx, []byte(`{"project":"`+demoProject+`","purpose":"housing","table":"households_tenure","area":"`+town+`"}`), "", false)
	fmt.Fprintf(out, "  … the standard table of households by tenure, a variable the project did not list: %s\n", codeOf(err))
	_, err = newClient("researcher-1").RequestTable(ctx, []byte(`{"project":"`+demoProject+`","purpose":"pyramid","table":"population_age5_sex","area":"`+plan[0].code+`"}`), "", false)
	fmt.Fprintf(out, "  … the pyramid of one enumeration area: %s\n", codeOf(err))

	// 9. A custom table under differential privacy, and the ledgers.
	if err := customTable(ctx, out, newClient("researcher-1"), plan[0].code); err != nil {
		return err
	}

	// 10. The processing centre and the administration, from a
	// workstation: the operator registers the field office's token
	// recipient on the vault host, the admin creates a processor over
	// HTTP (its token to that recipient only; its grant waits for the
	// approver: it sees data), the operator registers the
	// centre's environment on the vault host; the processor proposes an
	// extract, the approver approves it, and only the centre's key opens
	// it.
	if err := processingCentre(ctx, out, b, newClient, tokens, plan[0].code); err != nil {
		return err
	}

	res, err := enum.Deposit(ctx, first.ct)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	same := !res.Created && res.Receipt.AuditIndex == first.receipt.AuditIndex && res.Receipt.Note == first.receipt.Note
	fmt.Fprintf(out, "\nthe first household sent again (a device retrying after a lost reply): HTTP 200, same receipt: %v\n", same)
	if !same {
		return errors.New("a replayed deposit did not return the original receipt")
	}
	vkey, err := enum.VerifierKey(ctx, "receipt")
	if err != nil {
		return err
	}
	if err := verifyReceipt(&first.receipt, vkey); err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	fmt.Fprintf(out, "its receipt verifies against %s: audit index %d, payload sha256 %.16s…\n", strings.SplitN(vkey, "+", 2)[0], first.receipt.AuditIndex, first.receipt.PayloadSHA256)
	akey, err := enum.VerifierKey(ctx, "audit")
	if err != nil {
		return err
	}
	proof, err := newClient(first.user).ReceiptProof(ctx, first.id)
	if err != nil {
		return fmt.Errorf("receipt proof: %w", err)
	}
	if err := client.VerifyReceiptInclusion(proof, akey); err != nil {
		return fmt.Errorf("receipt proof: %w", err)
	}
	cpSize := strings.SplitN(string(proof.Checkpoint), "\n", 3)[1]
	fmt.Fprintf(out, "and the enumerator proves it is in the audit log: an inclusion proof of %d hashes against a signed checkpoint of %s events\n", len(proof.Hashes), cpSize)

	// The auditor exports the log as of a checkpoint and verifies it
	// offline: every event, the chain, the Merkle root, the signature.
	var export bytes.Buffer
	if _, err := newClient("auditor-1").Export(ctx, 0, &export); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	xr, err := audit.VerifyExport(&export, audit.ExportOpts{VerifierKey: akey})
	if err != nil {
		return fmt.Errorf("the auditor's export does not verify: %w", err)
	}
	fmt.Fprintf(out, "the auditor's export verifies offline: %s leaves (%s events, %s withheld) under root %.16s…\n",
		viNum(xr.Size), viNum(xr.Events), viNum(xr.Withheld), base64.StdEncoding.EncodeToString(xr.Root[:]))

	// 11. The audit log.
	srv.Close()
	if err := b.Close(ctx); err != nil {
		return err
	}
	vr, err := broker.VerifyAudit(ctx, st, b.AuditVerifierKey(), nil)
	if err != nil {
		return fmt.Errorf("audit chain BROKEN: %w", err)
	}
	fmt.Fprintf(out, "\naudit chain OK: %s events, every request above included (head %x…)\n", viNum(vr.Events), vr.Head[:8])
	fmt.Fprintf(out, "demo finished in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// processingCentre is the demo's administration and extract step: the
// operator registers the field office's token recipient on the vault
// host, an admin over HTTP adds a processor (its token only to that
// recipient, never to the admin's own key; its grant the approver
// confirms), the operator registers the processing centre's environment
// on the vault host (never an admin over HTTP); a team leader opens one
// household for review (the classes revealed, never a value shown
// here); the processor proposes an extract of a ward, the approver
// approves it, the processor downloads it, and the centre decrypts it and
// checks its SHA-256 against the audit log's.
func processingCentre(ctx context.Context, out io.Writer, b *broker.Broker, newClient func(string) *client.Client, tokens map[string]string, firstEA string) error {
	fmt.Fprintf(out, "\nthe processing centre and the administration, over HTTP:\n")
	office, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	// Tokens made over the API go only to the field office's recipient,
	// which the operator registers on the vault host: an admin who could
	// name its own key would hold the processor's token.
	if err := b.SetTokenRecipient(ctx, broker.HostOperator("cli:demo"), office.Recipient().String()); err != nil {
		return fmt.Errorf("token recipient: %w", err)
	}
	fmt.Fprintf(out, "  the operator registers the field office's age recipient on the vault host: tokens made over the API are encrypted to it alone\n")
	admin, approver := newClient("admin-1"), newClient("approver-1")
	own, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	_, err = admin.AddUser(ctx, wire.NewUser{Name: "proc-437", Role: string(policy.Processor), Area: town, Recipient: own.Recipient().String()})
	fmt.Fprintf(out, "  the admin asks for a processor's token encrypted to a key of its own: %s\n", codeOf(err))
	nt, err := admin.AddUser(ctx, wire.NewUser{Name: "proc-437", Role: string(policy.Processor), Area: town})
	if err != nil {
		return fmt.Errorf("add processor: %w", err)
	}
	fmt.Fprintf(out, "  the admin adds processor proc-437 for the town: its token only as age ciphertext to the field office (%d bytes, to %s…); its grant waits for an approver (proposal %v)\n", len(nt.Sealed), nt.Recipient, nt.Pending)
	_, err = admin.ConfirmProposal(ctx, nt.Pending[0])
	fmt.Fprintf(out, "  the admin confirms it himself: %s\n", codeOf(err))
	if _, err := approver.ConfirmProposal(ctx, nt.Pending[0]); err != nil {
		return fmt.Errorf("confirm: %w", err)
	}
	fmt.Fprintf(out, "  the approver confirms it: the processor can work\n")
	r, err := age.Decrypt(bytes.NewReader(nt.Sealed), office)
	if err != nil {
		return err
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(plain)), "\n")
	if len(lines) != 2 {
		return fmt.Errorf("the token file holds %d lines", len(lines))
	}
	tokens["proc-437"] = strings.Split(lines[1], ",")[1]

	// A team leader checks one interview of its ward.
	tl := newClient("tl-18070")
	list, err := tl.ListSubmissions(ctx, firstEA, client.ListOpts{Limit: 1})
	if err != nil || len(list.Submissions) == 0 {
		return fmt.Errorf("team leader's list: %v", err)
	}
	view, err := tl.OpenSubmission(ctx, string(list.Submissions[0].ID))
	if err != nil {
		return fmt.Errorf("team leader's open: %w", err)
	}
	fmt.Fprintf(out, "  team leader tl-18070 opens one household of %s for review: classes %s (one open of its 60 an hour, audited)\n", firstEA, strings.Join(view.Classes, ", "))

	centre, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	if _, err := b.AddEnvironment(ctx, broker.HostOperator("cli:demo"), broker.NewEnvironment{Name: "centre", Recipient: centre.Recipient().String()}); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	proc := newClient("proc-437")
	req := wire.ExtractRequest{Environment: "centre", Areas: []string{"18070"}, Form: form.Default().Name, Classes: []string{"analytic", "operational"}, Format: "jsonl", Purpose: "editing and coding of Phường Bắc Hồng"}
	req.Classes = []string{"identifying", "analytic"}
	_, err = proc.ProposeExtract(ctx, req)
	fmt.Fprintf(out, "  the processor asks for an extract with names and phone numbers: %s\n", codeOf(err))
	req.Classes = []string{"analytic", "operational"}
	x, err := proc.ProposeExtract(ctx, req)
	if err != nil {
		return fmt.Errorf("propose extract: %w", err)
	}
	_, err = proc.DownloadExtract(ctx, x.Seq, io.Discard)
	fmt.Fprintf(out, "  the processor proposes extract %d (ward 18070, analytic and operational fields, as of audit event %d); downloads it before approval: %s\n", x.Seq, x.AsOf, codeOf(err))
	if _, err := approver.ApproveExtract(ctx, x.Seq); err != nil {
		return fmt.Errorf("approve extract: %w", err)
	}
	_, err = approver.DownloadExtract(ctx, x.Seq, io.Discard)
	fmt.Fprintf(out, "  the approver approves it, then asks to download it: %s\n", codeOf(err))
	var ct bytes.Buffer
	dl, err := proc.DownloadExtract(ctx, x.Seq, &ct)
	if err != nil {
		return fmt.Errorf("download extract: %w", err)
	}
	dr, err := age.Decrypt(&ct, centre)
	if err != nil {
		return fmt.Errorf("the centre cannot decrypt the extract: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, dr)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != dl.SHA256 {
		return fmt.Errorf("the extract's SHA-256 %s is not the logged %s", got, dl.SHA256)
	}
	fmt.Fprintf(out, "  the processor downloads it (%s bytes of age ciphertext); the centre decrypts it: %s households, %s bytes, SHA-256 %.16s… as in audit event %d\n",
		viNum(dl.Bytes), viNum(dl.Rows), viNum(n), dl.SHA256, dl.AuditIndex)

	// An auditor asks why the team leader could see names.
	ex, err := newClient("auditor-1").Explain(ctx, "tl-18070", string(policy.ReadIdentifying), firstEA, "")
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	fmt.Fprintf(out, "  the auditor asks why tl-18070 may see names in %s: allow=%v, by %q\n", firstEA, ex.Allow, ex.Rule)
	return nil
}

// demoPoint is the publication point the demo's approver makes.
const demoPoint = "2019-04-10"

const pyramidRequest = `{"project":"` + demoProject + `","purpose":"population pyramid of the town for the district health plan","table":"population_age5_sex","area":"` + town + `","as_of":"` + demoPoint + `"}`

// researchTable asks for the town's population pyramid and prints it.
func researchTable(ctx context.Context, out io.Writer, c *client.Client) (*client.TableResponse, error) {
	res, err := c.RequestTable(ctx, []byte(pyramidRequest), "", false)
	if err != nil {
		return nil, fmt.Errorf("research table: %w", err)
	}
	var doc struct {
		Title map[string]string `json:"title"`
		Point string            `json:"point"`
		Cells []struct {
			Row, Col   []string
			Value      int64
			Suppressed bool
		} `json:"cells"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		return nil, fmt.Errorf("research table: %w", err)
	}
	fmt.Fprintf(out, "\nthe researcher's standard table (project %s): %s, town %s, at point %s,\n", demoProject, doc.Title["en"], town, doc.Point)
	fmt.Fprintf(out, "perturbed by cell key (±2 at most, the same cell always the same), counts under 10 suppressed (x):\n")
	fmt.Fprintf(out, "  %-7s %8s %8s %8s\n", "age", "male", "female", "total")
	val := func(i int) string {
		if doc.Cells[i].Suppressed {
			return "x"
		}
		return viNum(doc.Cells[i].Value)
	}
	for i := 0; i+2 < len(doc.Cells); i += 3 {
		r := doc.Cells[i].Row[0]
		if r == "*" {
			r = "all"
		}
		if i >= 3*16 && i+3 < len(doc.Cells) && i < 3*20 {
			continue // 80-99: the oldest bands, shown as one ellipsis
		}
		if i == 3*20 {
			fmt.Fprintf(out, "  %-7s\n", "…")
		}
		fmt.Fprintf(out, "  %-7s %8s %8s %8s\n", r, val(i), val(i+1), val(i+2))
	}
	fmt.Fprintf(out, "%s cells released and debited from the project's budget (%s left); the release (audit event %d) and its sha256 are in the audit log\n", viNum(res.Cells), viNum(res.Remaining), res.AuditIndex)
	return res, nil
}

// youngRequest is the demo's custom table: the town's young people by
// ward and sex, rows and columns as the researcher lays them out.
const youngRequest = `{"project":"` + demoProject + `","purpose":"young people by ward, for the district youth plan","rows":["commune"],"cols":["sex"],"filter":{"age_group5":["15-19","20-24"]}}`

// customTable asks for a custom table, which the vault releases under
// differential privacy at the day's scheduled point; asks for the same
// cells laid out otherwise (no new debit); asks for a table aimed at a
// few people of one EA (released: its noise swamps them); and prints the
// ledgers as the researcher sees them.
func customTable(ctx context.Context, out io.Writer, c *client.Client, ea string) error {
	res, err := c.RequestTable(ctx, []byte(youngRequest), "", false)
	if err != nil {
		return fmt.Errorf("custom table: %w", err)
	}
	var doc struct {
		Point   string `json:"point"`
		Control struct {
			Rho     string  `json:"rho"`
			Epsilon float64 `json:"epsilon"`
			SD      float64 `json:"noise_sd_count"`
		} `json:"disclosure_control"`
		Cells []struct {
			Row, Col   []string
			Value      int64
			Suppressed bool
		} `json:"cells"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil {
		return fmt.Errorf("custom table: %w", err)
	}
	fmt.Fprintf(out, "\nthe researcher's custom table (young people aged 15–24 by ward and sex), released under differential privacy (audit event %d)\n", res.AuditIndex)
	fmt.Fprintf(out, "at the day's scheduled point %s: ρ = %s (ε = %.2f at δ = 10⁻¹⁰), discrete Gaussian noise of σ = %.0f persons a cell,\n",
		doc.Point, doc.Control.Rho, doc.Control.Epsilon, doc.Control.SD)
	fmt.Fprintf(out, "a household counting at most 8 persons; margins are the sums of the noisy cells:\n")
	fmt.Fprintf(out, "  %-7s %8s %8s %8s\n", "ward", "male", "female", "total")
	for i := 0; i+2 < len(doc.Cells); i += 3 {
		r := doc.Cells[i].Row[0]
		if r == "*" {
			r = "all"
		}
		val := func(k int) string {
			if doc.Cells[k].Suppressed {
				return "x"
			}
			return viNum(doc.Cells[k].Value)
		}
		fmt.Fprintf(out, "  %-7s %8s %8s %8s\n", r, val(i), val(i+1), val(i+2))
	}
	swapped := `{"project":"` + demoProject + `","purpose":"the same, laid out by sex","rows":["sex"],"cols":["commune"],"filter":{"age_group5":["20-24","15-19"]}}`
	again, err := c.RequestTable(ctx, []byte(swapped), "", false)
	if err != nil {
		return fmt.Errorf("custom table again: %w", err)
	}
	if !again.Repeat {
		return errors.New("the same cells laid out otherwise were charged again")
	}
	fmt.Fprintf(out, "the same cells asked with rows and columns swapped: the same noisy values, no new debit (repeat: %v)\n", again.Repeat)
	one := `{"project":"` + demoProject + `","purpose":"a few people","rows":["ethnicity"],"filter":{"area":["` + ea + `"],"age_group5":["80-84"]}}`
	few, err := c.RequestTable(ctx, []byte(one), "", false)
	if err != nil {
		return fmt.Errorf("custom table of a few people: %w", err)
	}
	fmt.Fprintf(out, "a table aimed at a few people (ethnicity of EA %s's people aged 80–84): released, and charged; its noise of σ = %.0f\n"+
		"  a cell says nothing about them (released digest %s…)\n", ea, doc.Control.SD, few.Digest[:19])
	l, err := c.Ledger(ctx)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	fmt.Fprintf(out, "the privacy ledger as the researcher sees it (each share spent in its worst commune; δ = 10⁻¹⁰):\n")
	fmt.Fprintf(out, "  %-11s %-17s %6s %7s %7s %8s %7s\n", "share", "holder", "ρ", "ε", "spent", "ε spent", "tables")
	for _, sh := range l.Shares {
		holder := sh.Holder
		if holder == "" {
			holder = "every commune"
		}
		fmt.Fprintf(out, "  %-11s %-17s %6s %7.2f %7s %8.2f %7d\n", sh.Kind, holder, sh.Rho, sh.Epsilon, sh.Spent, sh.SpentEpsilon, sh.Tables)
	}
	return nil
}

// codeOf is a refusal's status and stable code (the message is long).
func codeOf(err error) string {
	var se *client.StatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("HTTP %d %s", se.Status, se.Code)
	}
	return outcome(err)
}

func outcome(err error) string {
	var se *client.StatusError
	if errors.As(err, &se) {
		return fmt.Sprintf("HTTP %d (%s)", se.Status, se.Message)
	}
	if err != nil {
		return err.Error()
	}
	return "allowed (unexpected!)"
}

func printProgress(w io.Writer, rep *broker.ProgressReport) error {
	if len(rep.Rows) == 0 {
		return errors.New("empty progress report")
	}
	fmt.Fprintf(w, "%-6s  %-22s %9s %13s %9s\n", "code", "ward / commune", "planned", "interviewed", "percent")
	line := func(r broker.ProgressRow) {
		fmt.Fprintf(w, "%-6s  %s %9s %13s %9s\n", r.Area, pad(r.Name, 22), viNum(r.Planned), viNum(r.Deposited), viPercent(r.Percent))
	}
	for _, r := range rep.Rows[1:] {
		line(r)
	}
	fmt.Fprintf(w, "%s\n", strings.Repeat("-", 63))
	line(rep.Rows[0])
	fmt.Fprintf(w, "\n%s: %s/%s households, %s\n", rep.Rows[0].Name, viNum(rep.Rows[0].Deposited), viNum(rep.Rows[0].Planned), viPercent(rep.Rows[0].Percent))
	return nil
}

// checkProgress makes the demo fail loudly if the vault's numbers are not
// the seed's.
func checkProgress(rep *broker.ProgressReport) error {
	want := map[string][2]int{}
	tp, ti := 0, 0
	for _, w := range HongLinh {
		want[w.Code] = [2]int{w.Planned, w.Interviewed}
		tp += w.Planned
		ti += w.Interviewed
	}
	want[town] = [2]int{tp, ti}
	if len(rep.Rows) != len(want) {
		return fmt.Errorf("progress has %d rows, want %d", len(rep.Rows), len(want))
	}
	for _, r := range rep.Rows {
		wv, ok := want[string(r.Area)]
		if !ok || int(r.Planned) != wv[0] || int(r.Deposited) != wv[1] {
			return fmt.Errorf("progress of %s: %d/%d, want %d/%d", r.Area, r.Deposited, r.Planned, wv[1], wv[0])
		}
	}
	return nil
}

func verifyReceipt(r *broker.Receipt, vkey string) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	n, err := note.Open([]byte(r.Note), note.VerifierList(v))
	if err != nil {
		return err
	}
	if n.Text != broker.ReceiptText(r) {
		return errors.New("signed text does not match the receipt")
	}
	return nil
}

// viNum formats like the statistics office: 11.786
func viNum(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// viPercent formats 76.88 as "76,88 %".
func viPercent(p float64) string {
	return strings.Replace(fmt.Sprintf("%.2f %%", p), ".", ",", 1)
}

func pad(s string, n int) string {
	l := len([]rune(s))
	if l >= n {
		return s
	}
	return s + strings.Repeat(" ", n-l)
}

var _ = json.Marshal

// submissionID reads the id of a submission's JSON.
func submissionID(plain []byte) (string, error) {
	var sub struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(plain, &sub); err != nil || sub.ID == "" {
		return "", fmt.Errorf("generated submission has no id: %v", err)
	}
	return sub.ID, nil
}
