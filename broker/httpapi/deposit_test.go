package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/note"
)

// verifyReceipt checks a receipt's note against the verifier key served at
// path and returns the signed text.
func verifyReceipt(t *testing.T, v *vault, rc *broker.Receipt, path string) (string, error) {
	t.Helper()
	r := v.do(http.MethodGet, path, "", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %d", path, r.Status)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want text/plain", path, ct)
	}
	vk, err := note.NewVerifier(strings.TrimSpace(string(r.Body)))
	if err != nil {
		t.Fatalf("GET %s is not a note verifier key: %v", path, err)
	}
	n, err := note.Open([]byte(rc.Note), note.VerifierList(vk))
	if err != nil {
		return "", err
	}
	return n.Text, nil
}

func TestDeposit(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})

	t.Run("happy path: 201 and a signed receipt bound to the audit record", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA1, 1)
		plain := encode(t, m)
		var r *response
		ev := v.oneEvent(func() { r = v.deposit("enum-a1", v.seal(plain)) })
		rc := v.receipt(r, http.StatusCreated)

		sum := sha256.Sum256(plain)
		if rc.SubmissionID != broker.SubmissionID(m["id"].(string)) || rc.Area != eaA1 {
			t.Errorf("receipt names %s in %s, want %s in %s", rc.SubmissionID, rc.Area, m["id"], eaA1)
		}
		if rc.PayloadSHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("payload_sha256 %s, want the SHA-256 of the submitted JSON %x", rc.PayloadSHA256, sum)
		}
		at, err := time.Parse(time.RFC3339Nano, rc.ReceivedAt)
		if err != nil || !strings.HasSuffix(rc.ReceivedAt, "Z") || !at.Equal(v.Clock.Now()) {
			t.Errorf("received_at %q: want the vault's clock %s in UTC RFC 3339 (err %v)", rc.ReceivedAt, v.Clock.Now().Format(time.RFC3339), err)
		}

		// The note verifies with the receipt key, and signs exactly the
		// receipt's fields.
		text, err := verifyReceipt(t, v, &rc, "/v1/keys/receipt")
		if err != nil {
			t.Fatalf("receipt note does not verify with GET /v1/keys/receipt: %v", err)
		}
		if text != broker.ReceiptText(&rc) {
			t.Errorf("signed text %q, want ReceiptText %q", text, broker.ReceiptText(&rc))
		}
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		want := []string{broker.ReceiptNoteHeader, string(rc.SubmissionID), string(rc.Area), rc.ReceivedAt, rc.PayloadSHA256, "", rc.LeafHash}
		if len(lines) != len(want) {
			t.Fatalf("signed text has %d lines, want %d: %q", len(lines), len(want), text)
		}
		for i, w := range want {
			if i != 5 && lines[i] != w {
				t.Errorf("signed line %d: %q, want %q", i, lines[i], w)
			}
		}
		// A different key signs the audit log: the receipt must not
		// verify with it.
		if _, err := verifyReceipt(t, v, &rc, "/v1/keys/audit"); err == nil {
			t.Error("the receipt also verifies with the audit key: receipts and the audit log must use different keys")
		}

		// audit_index and leaf_hash are those of the stored record.
		recs := v.auditRecords(rc.AuditIndex)
		if len(recs) == 0 || recs[0].Index != rc.AuditIndex {
			t.Fatalf("no audit record at index %d", rc.AuditIndex)
		}
		leaf := audit.LeafHash(recs[0].Event)
		if rc.LeafHash != base64.StdEncoding.EncodeToString(leaf[:]) || recs[0].LeafHash != leaf {
			t.Errorf("leaf_hash %s, want base64 of audit.LeafHash(event %d) = %s", rc.LeafHash, rc.AuditIndex, base64.StdEncoding.EncodeToString(leaf[:]))
		}
		if ev.Index != rc.AuditIndex || ev.Action != "submission.deposit" || ev.Outcome != "ok" || ev.Decision != "allow" ||
			ev.Area != eaA1 || ev.Actor != "user:enum-a1" || !slices.Contains(ev.Resources, "submission:"+m["id"].(string)) {
			t.Errorf("deposit event %+v does not describe the deposit", ev)
		}

		s, err := v.submission(m["id"].(string))
		if err != nil {
			t.Fatalf("deposit acknowledged but not stored: %v", err)
		}
		if s.Depositor != "enum-a1" || s.AuditIndex != rc.AuditIndex || s.PayloadSHA256 != rc.PayloadSHA256 || s.HouseholdNo != 1 {
			t.Errorf("stored row %s/%d/%d/%s does not match the receipt", s.Depositor, s.HouseholdNo, s.AuditIndex, s.PayloadSHA256)
		}
	})

	t.Run("armored age is accepted", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA1, 2)
		ct := armored(t, v.Recipient, encode(t, m))
		if !strings.HasPrefix(string(ct), "-----BEGIN AGE ENCRYPTED FILE-----") {
			t.Fatal("not armored")
		}
		v.receipt(v.deposit("enum-a1", ct), http.StatusCreated)
		// Leading whitespace, as a copy-paste adds.
		m = household(eaA1, 3)
		v.receipt(v.deposit("enum-a1", append([]byte("\n  "), armored(t, v.Recipient, encode(t, m))...)), http.StatusCreated)
	})

	t.Run("any Content-Type is accepted", func(t *testing.T) {
		v := v.in(t)
		for i, ct := range []string{
			"",                                  // none at all
			"application/x-www-form-urlencoded", // what curl --data-binary sends by default
			"application/octet-stream",
			"text/plain; charset=utf-8",
			"application/json",
			"multipart/form-data; boundary=xyz",
			"application/age",
		} {
			m := household(eaA2, 10+i)
			hdr := map[string]string{}
			if ct != "" {
				hdr["Content-Type"] = ct
			}
			r := v.do(http.MethodPost, "/v1/submissions", "Bearer "+v.Tokens["enum-a2"], strings.NewReader(string(v.seal(encode(t, m)))), hdr)
			if r.Status != http.StatusCreated {
				t.Errorf("Content-Type %q: status %d, want 201: %s", ct, r.Status, r.Body)
			}
		}
	})

	t.Run("same bytes again: 200 and the identical receipt, stored once", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA3, 1)
		plain := encode(t, m)
		ct := v.seal(plain)
		first := v.receipt(v.deposit("enum-a3", ct), http.StatusCreated)
		n, dep := v.countSubmissions(), v.deposited()[eaA3]

		var r *response
		ev := v.oneEvent(func() { r = v.deposit("enum-a3", ct) })
		if again := v.receipt(r, http.StatusOK); again != first {
			t.Errorf("replay got receipt %+v, want the original %+v", again, first)
		}
		if ev.Outcome != "replayed" {
			t.Errorf("replay event outcome %q, want replayed", ev.Outcome)
		}
		// Idempotency is decided on the decrypted bytes: the same JSON
		// encrypted afresh (a device that re-encrypts on retry) is the
		// same deposit.
		if again := v.receipt(v.deposit("enum-a3", v.seal(plain)), http.StatusOK); again != first {
			t.Errorf("re-encrypted replay got receipt %+v, want the original %+v", again, first)
		}
		if armor := v.receipt(v.deposit("enum-a3", armored(t, v.Recipient, plain)), http.StatusOK); armor != first {
			t.Errorf("armored replay got receipt %+v, want the original", armor)
		}
		if got := v.countSubmissions(); got != n {
			t.Errorf("%d submissions after replays, want %d", got, n)
		}
		if got := v.deposited()[eaA3]; got != dep {
			t.Errorf("deposited count %d after replays, want %d", got, dep)
		}
	})

	t.Run("same id with other content: 409, original kept", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA3, 2)
		first := v.receipt(v.deposit("enum-a3", v.seal(encode(t, m))), http.StatusCreated)
		for name, change := range map[string]func(hh){
			"other floor area":   func(m hh) { hhOf(m)["floor_area_m2"] = 70 },
			"other household_no": func(m hh) { m["household_no"] = 3 },
			"whitespace only":    func(m hh) {},
		} {
			c := household(eaA3, 2)
			c["id"] = m["id"]
			change(c)
			plain := encode(t, c)
			if name == "whitespace only" {
				plain = append([]byte(" "), plain...)
			}
			var r *response
			ev := v.oneEvent(func() { r = v.deposit("enum-a3", v.seal(plain)) })
			if r.Status != http.StatusConflict {
				t.Errorf("%s: status %d, want 409: %s", name, r.Status, r.Body)
			}
			r.ErrorBody(t)
			if ev.Outcome != "conflict" {
				t.Errorf("%s: event outcome %q, want conflict", name, ev.Outcome)
			}
		}
		s, err := v.submission(m["id"].(string))
		if err != nil || s.PayloadSHA256 != first.PayloadSHA256 {
			t.Errorf("the original deposit was changed by a conflicting one (err %v)", err)
		}
	})

	t.Run("8 identical deposits racing: one 201, seven 200 with the same receipt", func(t *testing.T) {
		v := v.in(t)
		m := household(eaB1, 1)
		ct := v.seal(encode(t, m))
		n, dep, head := v.countSubmissions(), v.deposited()[eaB1], v.auditHead()
		const racers = 8
		var (
			wg       sync.WaitGroup
			ready    = make(chan struct{})
			statuses [racers]int
			receipts [racers]broker.Receipt
		)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-ready
				res, err := v.Client("enum-b1").Deposit(t.Context(), ct)
				if err != nil {
					t.Errorf("racer %d: %v", i, err)
					return
				}
				statuses[i] = http.StatusOK
				if res.Created {
					statuses[i] = http.StatusCreated
				}
				receipts[i] = res.Receipt
			}()
		}
		close(ready)
		wg.Wait()
		created := 0
		for i := range racers {
			if statuses[i] == http.StatusCreated {
				created++
			}
			if receipts[i] != receipts[0] {
				t.Errorf("racer %d got receipt %+v, racer 0 %+v", i, receipts[i], receipts[0])
			}
		}
		if created != 1 {
			t.Errorf("%d racers got 201, want exactly 1 (statuses %v)", created, statuses)
		}
		if got := v.countSubmissions(); got != n+1 {
			t.Errorf("%d submissions, want %d: stored more than once", got, n+1)
		}
		if got := v.deposited()[eaB1]; got != dep+1 {
			t.Errorf("deposited count %d, want %d", got, dep+1)
		}
		outcomes := map[string]int{}
		for _, e := range v.eventsSince(head) {
			outcomes[e.Outcome]++
		}
		if outcomes["ok"] != 1 || outcomes["replayed"] != racers-1 || len(outcomes) != 2 {
			t.Errorf("audit outcomes %v, want 1 ok and %d replayed", outcomes, racers-1)
		}
	})
}

func TestHouseholdSupersede(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	first := household(eaA1, 7)
	v.receipt(v.deposit("enum-a1", v.seal(encode(t, first))), http.StatusCreated)
	firstID := first["id"].(string)

	t.Run("second household under the same number: 409 naming supersedes", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA1, 7)
		var r *response
		ev := v.oneEvent(func() { r = v.deposit("enum-a1", v.seal(encode(t, m))) })
		if r.Status != http.StatusConflict {
			t.Fatalf("status %d, want 409: %s", r.Status, r.Body)
		}
		if msg, _ := r.ErrorBody(t); !strings.Contains(msg, "supersedes") {
			t.Errorf("409 message %q does not tell the device about \"supersedes\"", msg)
		}
		if ev.Outcome != "conflict" {
			t.Errorf("event outcome %q, want conflict", ev.Outcome)
		}
		v.mustNotBeStored(m["id"].(string))
		// The same number in another EA is another household.
		v.receipt(v.deposit("enum-a2", v.seal(encode(t, household(eaA2, 7)))), http.StatusCreated)
	})

	t.Run("supersede by another enumerator of the same EA: 403", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA1, 7)
		m["supersedes"] = firstID
		var r *response
		ev := v.oneEvent(func() { r = v.deposit("enum-a1-bis", v.seal(encode(t, m))) })
		if r.Status != http.StatusForbidden {
			t.Fatalf("status %d, want 403: %s", r.Status, r.Body)
		}
		if ev.Outcome != "denied" || ev.Decision != "deny" {
			t.Errorf("event %s/%s, want denied/deny", ev.Outcome, ev.Decision)
		}
		v.mustNotBeStored(m["id"].(string))
		if s, _ := v.submission(firstID); s == nil || s.SupersededBy != "" {
			t.Error("a refused supersede marked the original superseded")
		}
	})

	var secondID string
	t.Run("supersede by the same enumerator: 201, old one marked, counted once", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA1, 7)
		m["supersedes"] = firstID
		hhOf(m)["head_name"] = "Nguyễn Văn Hưng" // a corrected name
		dep := v.deposited()[eaA1]
		var r *response
		ev := v.oneEvent(func() { r = v.deposit("enum-a1", v.seal(encode(t, m))) })
		v.receipt(r, http.StatusCreated)
		secondID = m["id"].(string)
		if !slices.Contains(ev.Resources, "supersedes:"+firstID) {
			t.Errorf("event resources %v do not name the superseded submission", ev.Resources)
		}
		old, err := v.submission(firstID)
		if err != nil {
			t.Fatalf("the superseded version must stay stored: %v", err)
		}
		if old.SupersededBy != secondID {
			t.Errorf("old version superseded_by %q, want %q", old.SupersededBy, secondID)
		}
		if len(old.Sealed) == 0 {
			t.Error("the superseded version lost its sealed fields")
		}
		if got := v.deposited()[eaA1]; got != dep {
			t.Errorf("deposited %d after a supersede, want %d (the household counts once)", got, dep)
		}
		_, rep := v.progress("enum-a1", eaA1, 0)
		if rep == nil || rep.Rows[0].Deposited != dep {
			t.Errorf("progress of %s: %+v, want %d deposited", eaA1, rep, dep)
		}
		o, err := v.B.Open(t.Context(), broker.SubmissionID(firstID))
		if err != nil || !o.Superseded {
			t.Errorf("Open(old) = %+v, %v: want it marked superseded", o, err)
		}
	})

	t.Run("supersedes naming a non-current id: 409", func(t *testing.T) {
		v := v.in(t)
		for name, target := range map[string]string{
			"the already superseded version": firstID,
			"an unknown id":                  uuid.NewString(),
			"a household of another EA":      "",
		} {
			m := household(eaA1, 7)
			if target == "" {
				other := household(eaA1, 8)
				v.receipt(v.deposit("enum-a1", v.seal(encode(t, other))), http.StatusCreated)
				target = other["id"].(string)
			}
			m["supersedes"] = target
			r := v.deposit("enum-a1", v.seal(encode(t, m)))
			if r.Status != http.StatusConflict {
				t.Errorf("%s: status %d, want 409: %s", name, r.Status, r.Body)
			}
			v.mustNotBeStored(m["id"].(string))
		}
		// Supersedes on a household number nobody deposited yet.
		m := household(eaA1, 99)
		m["supersedes"] = secondID
		if r := v.deposit("enum-a1", v.seal(encode(t, m))); r.Status != http.StatusConflict {
			t.Errorf("supersedes on an empty household number: status %d, want 409", r.Status)
		}
		if s, _ := v.submission(secondID); s == nil || s.SupersededBy != "" {
			t.Error("a refused supersede marked the current version superseded")
		}
	})

	t.Run("supersede by a team leader in scope: 201; out of scope: 403", func(t *testing.T) {
		v := v.in(t)
		m := household(eaA1, 7)
		m["supersedes"] = secondID
		if r := v.deposit("tl-b", v.seal(encode(t, m))); r.Status != http.StatusForbidden {
			t.Errorf("team leader of the other commune: status %d, want 403: %s", r.Status, r.Body)
		}
		v.receipt(v.deposit("tl-a", v.seal(encode(t, m))), http.StatusCreated)
		if s, _ := v.submission(secondID); s == nil || s.SupersededBy != m["id"] {
			t.Errorf("team leader's supersede did not mark %s", secondID)
		}
		var cur int
		if err := v.rawDB().QueryRow(`SELECT count(*) FROM submissions WHERE area = ? AND household_no = 7 AND superseded_by IS NULL`, eaA1).Scan(&cur); err != nil {
			t.Fatal(err)
		}
		if cur != 1 {
			t.Errorf("%d current versions of household 7, want 1", cur)
		}
	})
}
