package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/censusvault/censusvault/storage"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/censusvault/censusvault/audit"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/crypto"
	"github.com/censusvault/censusvault/policy"
)

type auditPage struct {
	Events []json.RawMessage `json:"events"`
	Next   *int64            `json:"next"`
}

func TestAudit(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	setupEnd := v.auditHead()
	first := secretHousehold(eaA1, 1)
	firstCT := v.seal(encode(t, first))
	firstID := first["id"].(string)

	t.Run("every request appends exactly one event", func(t *testing.T) {
		v := v.in(t)
		for _, k := range []struct {
			name            string
			do              func() *response
			status          int
			action, outcome string
		}{
			{"deposit", func() *response { return v.deposit("enum-a1", firstCT) }, 201, "submission.deposit", "ok"},
			{"deposit replay", func() *response { return v.deposit("enum-a1", firstCT) }, 200, "submission.deposit", "replayed"},
			{"deposit conflict", func() *response {
				m := secretHousehold(eaA1, 1)
				return v.deposit("enum-a1", v.seal(encode(t, m)))
			}, 409, "submission.deposit", "conflict"},
			{"deposit invalid", func() *response { return v.deposit("enum-a1", v.seal([]byte("{}"))) }, 400, "submission.deposit", "invalid"},
			{"deposit not age", func() *response { return v.deposit("enum-a1", []byte(secretName)) }, 400, "submission.deposit", "invalid"},
			{"deposit denied", func() *response { return v.deposit("steering-a", firstCT) }, 403, "submission.deposit", "denied"},
			{"deposit out of scope", func() *response { return v.deposit("enum-b1", firstCT) }, 403, "submission.deposit", "denied"},
			{"progress", func() *response { return v.get("steering-a", "/v1/progress?area="+communeA) }, 200, "progress.read", "ok"},
			{"progress denied", func() *response { return v.get("steering-a", "/v1/progress?area="+communeB) }, 403, "progress.read", "denied"},
			{"progress unknown area", func() *response { return v.get("steering-a", "/v1/progress?area=nowhere") }, 404, "progress.read", "invalid"},
			{"submission read", func() *response { return v.get("enum-a1", "/v1/submissions/"+firstID) }, 403, "submission.read", "denied"},
			{"own receipt", func() *response { return v.get("enum-a1", "/v1/receipts/"+firstID) }, 200, "receipt.read", "ok"},
			{"foreign receipt", func() *response { return v.get("enum-a2", "/v1/receipts/"+firstID) }, 404, "receipt.read", "denied"},
			{"audit read", func() *response { return v.get("auditor", "/v1/audit/events?limit=1") }, 200, "audit.read", "ok"},
			{"audit read denied", func() *response { return v.get("enum-a1", "/v1/audit/events") }, 403, "audit.read", "denied"},
			{"unauthenticated", func() *response { v.flushAuth(); return v.do("GET", "/v1/progress", "", nil, nil) }, 401, "auth.authenticate", "unauthenticated"},
		} {
			var r *response
			ev := v.oneEvent(func() { r = k.do() })
			if r.Status != k.status || ev.Action != k.action || ev.Outcome != k.outcome {
				t.Errorf("%s: %d %s/%s, want %d %s/%s", k.name, r.Status, ev.Action, ev.Outcome, k.status, k.action, k.outcome)
			}
		}
	})

	t.Run("events carry the policy hash in force", func(t *testing.T) {
		v := v.in(t)
		ph := v.policyHash()
		if ph == "" {
			t.Fatal("no policy hash stored")
		}
		all := v.eventsSince(0)
		for _, e := range all {
			if e.PolicyHash == "" {
				t.Errorf("event %d (%s) has no policy hash", e.Index, e.Action)
			}
			if e.Index >= setupEnd && e.PolicyHash != ph {
				t.Errorf("event %d (%s) policy hash %s, want %s", e.Index, e.Action, e.PolicyHash, ph)
			}
		}
		// A new grant changes the hash, and later events carry the new
		// one.
		ev := v.oneEvent(func() {
			if _, err := v.B.AddUser(t.Context(), "cli:test", broker.NewUser{Name: "enum-a3-bis", Role: policy.Enumerator, Area: eaA3}); err != nil {
				t.Fatal(err)
			}
		})
		ph2 := v.policyHash()
		if ph2 == ph || ev.PolicyHash != ph2 || ev.Action != "user.add" {
			t.Errorf("after a grant: stored %s (was %s), event %s %s", ph2, ph, ev.Action, ev.PolicyHash)
		}
		ev = v.oneEvent(func() { v.get("steering-a", "/v1/progress?area="+communeA) })
		if ev.PolicyHash != ph2 {
			t.Errorf("event after the grant carries %s, want %s", ev.PolicyHash, ph2)
		}
	})

	t.Run("no event holds a token, a digest, a name or a deposited value", func(t *testing.T) {
		v := v.in(t)
		// More traffic carrying secrets: a supersede, invalid ones,
		// made-up tokens, every user's token.
		m := secretHousehold(eaA1, 1)
		m["supersedes"] = firstID
		v.receipt(v.deposit("enum-a1", v.seal(encode(t, m))), http.StatusCreated)
		bad := secretHousehold(eaA1, 2)
		hhOf(bad)["dwelling_type"] = secretAddress
		v.deposit("enum-a1", v.seal(encode(t, bad)))
		v.flushAuth()
		v.do("GET", "/v1/progress", "Bearer "+secretName, nil, nil)
		for u := range v.Tokens {
			v.get(u, "/v1/progress")
		}
		var forbidden []string
		forbidden = append(forbidden, secrets...)
		forbidden = append(forbidden, "Nguyễn Văn Hùng", "Trần Thị Lan", "Số 12, ngõ 4", "0987654321")
		for _, tok := range v.Tokens {
			d, err := crypto.ParseTokenDigest(tok)
			if err != nil {
				t.Fatal(err)
			}
			forbidden = append(forbidden, tok, d.Hex())
		}
		for _, r := range v.auditRecords(0) {
			for _, s := range forbidden {
				if bytes.Contains(r.Event, []byte(s)) {
					t.Errorf("event %d holds %q: %s", r.Index, s, r.Event)
				}
			}
		}
	})

	t.Run("GET /v1/audit/events: the exact stored bytes, paged", func(t *testing.T) {
		v := v.in(t)
		var got []json.RawMessage
		from := int64(0)
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatal("paging does not end")
			}
			r := v.get("auditor", fmt.Sprintf("/v1/audit/events?from=%d&limit=7", from))
			if r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			var p auditPage
			r.JSON(t, &p)
			if len(p.Events) > 7 {
				t.Fatalf("page of %d events over limit 7", len(p.Events))
			}
			got = append(got, p.Events...)
			if p.Next == nil {
				break
			}
			if *p.Next != from+int64(len(p.Events)) {
				t.Fatalf("next %d after %d events from %d", *p.Next, len(p.Events), from)
			}
			from = *p.Next
		}
		stored := v.auditRecords(0)
		if len(got) > len(stored) || len(got) < len(stored)-1 {
			// The last page's own read event may come after it.
			t.Fatalf("paged %d events, %d stored", len(got), len(stored))
		}
		for i, e := range got {
			if !bytes.Equal(e, stored[i].Event) {
				t.Errorf("event %d over HTTP differs from the stored bytes:\n got %s\nwant %s", i, e, stored[i].Event)
			}
		}
		// The Go client pages the same way.
		evs, next, err := v.Client("auditor").AuditEvents(t.Context(), 0, 3)
		if err != nil || len(evs) != 3 || next != 3 || !bytes.Equal(evs[2], stored[2].Event) {
			t.Errorf("client.AuditEvents(0, 3) = %d events, next %d, %v", len(evs), next, err)
		}
	})

	t.Run("exported events stay exact when they hold < > & characters", func(t *testing.T) {
		v := v.in(t)
		head := v.auditHead()
		// Callers cannot put such text into events any more (ids and
		// codes are checked first), so write one the way the broker
		// does: an opaque sealed event appended in a transaction.
		err := v.Store.Update(context.Background(), func(tx storage.Tx) error {
			_, err := tx.AppendAudit(func(h storage.AuditHead) (storage.AuditRecord, error) {
				r, err := audit.Seal(h.ChainHash, &audit.Event{Index: h.Next, Time: time.Now(), Actor: "cli:test",
					Action: "test.escape", Reason: "<b>&x", Outcome: "ok"})
				if err != nil {
					return storage.AuditRecord{}, err
				}
				// And its Merkle tree hashes, as the broker stores them.
				hs, err := audit.StoredHashes(r.Index, r.LeafHash, audit.HashReaderFunc(tx.AuditHashes))
				return storage.AuditRecord{Index: r.Index, Event: r.Event, LeafHash: r.LeafHash, ChainHash: r.ChainHash,
					HashIndex: audit.StoredHashIndex(r.Index), Hashes: hs}, err
			})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		recs := v.auditRecords(head)
		if len(recs) != 1 || !bytes.Contains(recs[0].Event, []byte("<b>&x")) {
			t.Fatalf("setup: the event was not stored as written")
		}
		r := v.get("auditor", fmt.Sprintf("/v1/audit/events?from=%d&limit=1", head))
		var p auditPage
		r.JSON(t, &p)
		if len(p.Events) != 1 || !bytes.Equal(p.Events[0], recs[0].Event) {
			t.Errorf("the exported line is not the hashed bytes (HTML-escaped?):\n got %s\nwant %s", p.Events, recs[0].Event)
		} else if leaf := audit.LeafHash(p.Events[0]); leaf != recs[0].LeafHash {
			t.Error("the exported line does not hash to the stored leaf")
		}
	})

	t.Run("reading the log is itself logged; others get 403", func(t *testing.T) {
		v := v.in(t)
		ev := v.oneEvent(func() {
			if r := v.get("auditor", "/v1/audit/events?from=0&limit=2"); r.Status != 200 {
				t.Errorf("auditor: %d", r.Status)
			}
		})
		if ev.Action != "audit.read" || ev.Outcome != "ok" || ev.Actor != "user:auditor" || ev.Decision != "allow" {
			t.Errorf("audit read event %s/%s by %s", ev.Action, ev.Outcome, ev.Actor)
		}
		for _, u := range []string{"enum-a1", "tl-a", "supervisor", "steering-town", "researcher", "admin"} {
			var r *response
			ev := v.oneEvent(func() { r = v.get(u, "/v1/audit/events") })
			if r.Status != http.StatusForbidden || ev.Outcome != "denied" {
				t.Errorf("%s reads the audit log: %d/%s, want 403/denied", u, r.Status, ev.Outcome)
			}
			if bytes.Contains(r.Body, []byte("events")) {
				t.Errorf("%s got events in a refusal: %s", u, r.Body)
			}
		}
	})

	t.Run("bad paging parameters: 400, logged", func(t *testing.T) {
		v := v.in(t)
		for _, q := range []string{"from=-1", "from=x", "limit=0", "limit=1001", "limit=many"} {
			head := v.auditHead()
			r := v.get("auditor", "/v1/audit/events?"+q)
			if r.Status != http.StatusBadRequest {
				t.Errorf("%s: %d, want 400", q, r.Status)
			}
			if n := v.auditHead() - head; n != 1 {
				t.Errorf("%s: %d audit events, want 1: a request rejected as invalid must be logged", q, n)
			}
		}
	})

	t.Run("the chain verifies, and a changed event is found", func(t *testing.T) {
		v := v.in(t)
		res, err := broker.VerifyAudit(t.Context(), v.Store, "", nil)
		if err != nil {
			t.Fatalf("VerifyAudit: %v", err)
		}
		recs := v.auditRecords(0)
		if res.Events != int64(len(recs)) || res.Head != recs[len(recs)-1].ChainHash {
			t.Errorf("VerifyAudit: %d events head %x, want %d head %x", res.Events, res.Head, len(recs), recs[len(recs)-1].ChainHash)
		}
		// Rewrite one event's outcome as someone with the database file
		// would: the append-only trigger refuses, so drop it first.
		target := recs[len(recs)/2]
		forged := bytes.Replace(target.Event, []byte(`"outcome":"`), []byte(`"outcome":"x`), 1)
		if _, err := v.rawDB().Exec(`UPDATE audit_events SET event = ? WHERE idx = ?`, forged, target.Index); err == nil {
			t.Fatal("the store let an audit event be rewritten")
		}
		if _, err := v.rawDB().Exec(`DROP TRIGGER audit_events_prune_only`); err != nil {
			t.Fatal(err)
		}
		if _, err := v.rawDB().Exec(`UPDATE audit_events SET event = ? WHERE idx = ?`, forged, target.Index); err != nil {
			t.Fatal(err)
		}
		_, err = broker.VerifyAudit(t.Context(), v.Store, "", nil)
		var ve *audit.VerifyError
		if !errors.As(err, &ve) {
			t.Fatalf("VerifyAudit after tampering: %v, want an *audit.VerifyError", err)
		}
		if !strings.Contains(ve.Error(), fmt.Sprint(target.Index)) {
			t.Errorf("VerifyError %q does not name index %d", ve, target.Index)
		}
	})
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	before := household(eaA1, 1)
	beforeCT := v.seal(encode(t, before))
	v.receipt(v.deposit("enum-a1", beforeCT), http.StatusCreated)
	db := v.rawDB()
	if _, err := db.Exec(`CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit disk full'); END`); err != nil {
		t.Fatal(err)
	}
	m := secretHousehold(eaA1, 2)
	ct := v.seal(encode(t, m))
	n, dep, head := v.countSubmissions(), v.deposited(), v.auditHead()

	for _, k := range []struct {
		name string
		do   func() *response
	}{
		{"deposit", func() *response { return v.deposit("enum-a1", ct) }},
		{"deposit replay", func() *response { return v.deposit("enum-a1", beforeCT) }},
		{"deposit refused as invalid", func() *response { return v.deposit("enum-a1", []byte("garbage")) }},
		{"deposit denied", func() *response { return v.deposit("steering-a", ct) }},
		{"progress", func() *response { return v.get("steering-a", "/v1/progress?area="+communeA) }},
		{"receipt", func() *response { return v.get("enum-a1", "/v1/receipts/"+before["id"].(string)) }},
		{"audit events", func() *response { return v.get("auditor", "/v1/audit/events") }},
		{"receipt proof", func() *response { return v.get("enum-a1", "/v1/receipts/"+before["id"].(string)+"/proof") }},
		{"audit export", func() *response { return v.get("auditor", "/v1/audit/export") }},
	} {
		r := k.do()
		if r.Status != http.StatusServiceUnavailable {
			t.Errorf("%s with the audit log failing: %d, want 503: %s", k.name, r.Status, r.Body)
		}
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", k.name)
		}
		for _, leak := range []string{`"rows"`, `"events"`, `"note"`, `"receipt`, `"deposited"`, `"checkpoint"`, `"hashes"`, `"index"`} {
			if strings.Contains(string(r.Body), leak) {
				t.Errorf("%s: a refused request released %s: %s", k.name, leak, r.Body)
			}
		}
	}
	// The public routes are not audited, so they still answer: they
	// release hashes and signatures only.
	if r := v.do(http.MethodGet, "/v1/audit/checkpoint", "", nil, nil); r.Status != http.StatusOK {
		t.Errorf("public checkpoint with the audit log failing: %d %s", r.Status, r.Body)
	}
	v.mustNotBeStored(m["id"].(string))
	if got := v.countSubmissions(); got != n {
		t.Errorf("%d submissions, want %d", got, n)
	}
	if got := v.deposited(); fmt.Sprint(got) != fmt.Sprint(dep) {
		t.Errorf("deposited counts %v, want %v", got, dep)
	}
	if got := v.auditHead(); got != head {
		t.Errorf("audit head %d, want %d", got, head)
	}

	if _, err := db.Exec(`DROP TRIGGER no_audit`); err != nil {
		t.Fatal(err)
	}
	// The device retries the same bytes: it is stored now, as new.
	v.receipt(v.deposit("enum-a1", ct), http.StatusCreated)
	if r := v.get("steering-a", "/v1/progress?area="+communeA); r.Status != http.StatusOK {
		t.Errorf("progress after recovery: %d", r.Status)
	}
	if _, err := broker.VerifyAudit(t.Context(), v.Store, "", nil); err != nil {
		t.Errorf("chain after recovery: %v", err)
	}
}
