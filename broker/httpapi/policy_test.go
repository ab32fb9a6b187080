package httpapi_test

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/google/uuid"
)

func TestPolicy(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	m := household(eaA1, 1)
	mine := v.receipt(v.deposit("enum-a1", v.seal(encode(t, m))), http.StatusCreated)
	id := m["id"].(string)

	t.Run("enumerator depositing in another EA: 403", func(t *testing.T) {
		v := v.in(t)
		for _, k := range []struct{ user, ea string }{
			{"enum-a1", eaA2}, // sibling EA
			{"enum-a1", eaB1}, // other commune
			{"enum-b1", eaA1},
			{"tl-b", eaA3}, // team leader outside its commune
		} {
			o := household(k.ea, 50)
			var r *response
			ev := v.oneEvent(func() { r = v.deposit(k.user, v.seal(encode(t, o))) })
			if r.Status != http.StatusForbidden {
				t.Errorf("%s in %s: status %d, want 403: %s", k.user, k.ea, r.Status, r.Body)
			}
			if ev.Outcome != "denied" || ev.Decision != "deny" || ev.Area != k.ea {
				t.Errorf("%s in %s: event %s/%s at %q", k.user, k.ea, ev.Outcome, ev.Decision, ev.Area)
			}
			v.mustNotBeStored(o["id"].(string))
		}
		// In scope: a team leader deposits in any EA of its commune.
		v.receipt(v.deposit("tl-a", v.seal(encode(t, household(eaA3, 50)))), http.StatusCreated)
	})

	t.Run("progress outside the caller's subtree: 403", func(t *testing.T) {
		v := v.in(t)
		for _, k := range []struct {
			user, area string
			status     int
		}{
			{"enum-a1", eaA1, 200},
			{"enum-a1", eaA2, 403},
			{"enum-a1", communeA, 403}, // an EA grant does not reach up
			{"enum-a1", communeB, 403},
			{"tl-a", communeA, 200},
			{"tl-a", communeB, 403},
			{"steering-a", communeA, 200},
			{"steering-a", eaA2, 200},
			{"steering-a", communeB, 403}, // the sibling
			{"steering-a", district, 403},
			{"steering-town", district, 200},
			{"steering-town", province, 403},
			{"supervisor", communeB, 200},
			{"researcher", district, 403},
			{"auditor", communeA, 403},
			{"admin", nation, 403},
		} {
			var r *response
			ev := v.oneEvent(func() { r, _ = v.progress(k.user, k.area, 1) })
			if r.Status != k.status {
				t.Errorf("%s asks progress of %s: %d, want %d: %s", k.user, k.area, r.Status, k.status, r.Body)
			}
			wantOutcome := map[int]string{200: "ok", 403: "denied"}[k.status]
			if ev.Action != "progress.read" || ev.Outcome != wantOutcome || ev.Area != k.area {
				t.Errorf("%s asks progress of %s: event %s/%s at %q, want progress.read/%s", k.user, k.area, ev.Action, ev.Outcome, ev.Area, wantOutcome)
			}
		}
	})

	t.Run("GET /v1/submissions/{id}: 403 for every role that may see no class of it, and for unknown ids", func(t *testing.T) {
		v := v.in(t)
		// The team leader of its commune and the supervisor of its
		// district open it (views_test.go); everyone else, the
		// depositor itself included, is refused.
		mayOpen := map[string]bool{"tl-a": true, "supervisor": true}
		users := []string{"enum-a1"} // the depositor itself
		for _, u := range testUsers {
			if !mayOpen[string(u.Name)] {
				users = append(users, string(u.Name))
			}
		}
		for _, u := range users {
			// Not a UUID: refused as invalid, and the caller's text is
			// not copied into the log.
			for _, bad := range []string{"not-a-uuid", strings.ToUpper(id), strings.Repeat("x", 8192)} {
				var r *response
				ev := v.oneEvent(func() { r = v.get(u, "/v1/submissions/"+bad) })
				if r.Status != http.StatusBadRequest || ev.Action != "submission.read" || ev.Outcome != "invalid" {
					t.Errorf("%s GET submission %.20s: %d, event %s/%s; want 400 and an invalid event", u, bad, r.Status, ev.Action, ev.Outcome)
				}
				if raw := v.auditRecords(v.auditHead() - 1); len(raw) != 1 || bytes.Contains(raw[0].Event, []byte(bad)) {
					t.Errorf("%s GET submission %.20s: the caller's id reached the log", u, bad)
				}
			}
			for _, sid := range []string{id, uuid.NewString()} {
				var r *response
				ev := v.oneEvent(func() { r = v.get(u, "/v1/submissions/"+sid) })
				if r.Status != http.StatusForbidden {
					t.Errorf("%s GET submission %s: %d, want 403: %s", u, sid, r.Status, r.Body)
				}
				if ev.Action != "submission.read" || ev.Outcome != "denied" || ev.Decision != "deny" {
					t.Errorf("%s GET submission %s: event %s/%s/%s", u, sid, ev.Action, ev.Outcome, ev.Decision)
				}
				if !slices.Contains(ev.Resources, "submission:"+sid) {
					t.Errorf("event resources %v do not name the submission asked for", ev.Resources)
				}
				if strings.Contains(string(r.Body), "Nguyễn") {
					t.Errorf("the refusal carries submission data: %s", r.Body)
				}
			}
		}
		// Known and unknown ids get the same answer.
		a := v.get("researcher", "/v1/submissions/"+id)
		other := uuid.NewString()
		b := v.get("researcher", "/v1/submissions/"+other)
		if a.Status != b.Status || strings.ReplaceAll(string(a.Body), id, "ID") != strings.ReplaceAll(string(b.Body), other, "ID") {
			t.Errorf("a known id answers %d %s, an unknown one %d %s: the route tells which ids exist", a.Status, a.Body, b.Status, b.Body)
		}
	})

	t.Run("GET /v1/submissions/{id} with a hostile id stays small in the log", func(t *testing.T) {
		v := v.in(t)
		long := strings.Repeat("x", 300<<10) // over audit.MaxEventSize
		for name, sid := range map[string]string{
			"8 KiB id":   strings.Repeat("y", 8<<10),
			"300 KiB id": long,
		} {
			for _, route := range []string{"/v1/submissions/", "/v1/receipts/"} {
				head := v.auditHead()
				r := v.get("enum-a1", route+sid)
				if r.Status >= 500 || r.Status < 400 {
					t.Errorf("%s%s: status %d, want a 4xx refusal: %.200s", route, name, r.Status, r.Body)
				}
				recs := v.auditRecords(head)
				if len(recs) != 1 {
					t.Errorf("%s%s: %d audit events, want 1", route, name, len(recs))
				}
				for _, rec := range recs {
					if len(rec.Event) > 4<<10 {
						t.Errorf("%s%s: the refusal's audit event is %d bytes: a caller-chosen id is copied into the log unbounded", route, name, len(rec.Event))
					}
				}
			}
		}
	})

	t.Run("receipts: own 200, anyone else's 404", func(t *testing.T) {
		v := v.in(t)
		r := v.get("enum-a1", "/v1/receipts/"+id)
		if r.Status != http.StatusOK {
			t.Fatalf("own receipt: %d: %s", r.Status, r.Body)
		}
		var got broker.Receipt
		r.JSON(t, &got)
		if got != mine {
			t.Errorf("own receipt %+v, want the deposit's %+v", got, mine)
		}
		unknown := uuid.NewString()
		for _, k := range []struct{ user, id string }{
			{"enum-a1-bis", id}, // same EA, another enumerator
			{"enum-b1", id},
			{"tl-a", id},
			{"supervisor", id},
			{"steering-a", id},
			{"auditor", id},
			{"admin", id},
			{"enum-a1", unknown},
		} {
			var r *response
			ev := v.oneEvent(func() { r = v.get(k.user, "/v1/receipts/"+k.id) })
			if r.Status != http.StatusNotFound {
				t.Errorf("%s asks the receipt of %s: %d, want 404: %s", k.user, k.id, r.Status, r.Body)
			}
			if strings.Contains(string(r.Body), mine.Note) || strings.Contains(string(r.Body), mine.PayloadSHA256) {
				t.Errorf("%s got receipt data in a refusal: %s", k.user, r.Body)
			}
			if ev.Action != "receipt.read" || ev.Outcome != "denied" || ev.Decision != "deny" {
				t.Errorf("event %s/%s/%s, want receipt.read/denied/deny", ev.Action, ev.Outcome, ev.Decision)
			}
		}
		// The client package's Receipt agrees.
		rc, err := v.Client("enum-a1").Receipt(t.Context(), id)
		if err != nil || *rc != mine {
			t.Errorf("client.Receipt = %+v, %v", rc, err)
		}
	})
}

func TestProgress(t *testing.T) {
	t.Parallel()
	v := newVault(t, vaultOpts{})
	deposits := map[string]struct {
		user string
		n    int
	}{
		eaA1: {"enum-a1", 1}, // 1/3: 33.33 %
		eaA2: {"enum-a2", 2}, // 2/7: 28.57 %
		eaB1: {"enum-b1", 5}, // 5/6: 83.33 %
	}
	for ea, d := range deposits {
		for i := 1; i <= d.n; i++ {
			v.receipt(v.deposit(d.user, v.seal(encode(t, household(ea, i)))), http.StatusCreated)
		}
	}
	// Replays, refusals and conflicts do not count.
	dup := household(eaA1, 1)
	v.deposit("enum-a1", v.seal(encode(t, dup)))
	v.deposit("enum-a1", []byte("garbage"))

	type want struct {
		level              string
		planned, deposited int64
		percent            float64
	}
	all := map[string]want{
		nation:   {"nation", 136, 8, 5.88},
		province: {"province", 136, 8, 5.88},
		district: {"district", 136, 8, 5.88},
		communeA: {"commune", 130, 3, 2.31},
		communeB: {"commune", 6, 5, 83.33},
		eaA1:     {"ea", 3, 1, 33.33},
		eaA2:     {"ea", 7, 2, 28.57},
		eaA3:     {"ea", 120, 0, 0},
		eaB1:     {"ea", 6, 5, 83.33},
		eaB2:     {"ea", 0, 0, 0}, // nothing planned: 0, not NaN
	}
	check := func(t *testing.T, rep *progressReport) {
		t.Helper()
		for _, row := range rep.Rows {
			w, ok := all[row.Area]
			if !ok {
				t.Errorf("unexpected row %s", row.Area)
				continue
			}
			p, err := strconv.ParseFloat(string(row.Percent), 64)
			if err != nil {
				t.Errorf("%s: percent %s is not a number", row.Area, row.Percent)
			}
			if row.Level != w.level || row.Planned != w.planned || row.Deposited != w.deposited || p != w.percent {
				t.Errorf("%s: %s %d/%d %s%%, want %s %d/%d %.2f%%", row.Area, row.Level, row.Deposited, row.Planned, row.Percent,
					w.level, w.deposited, w.planned, w.percent)
			}
			if i := strings.IndexByte(string(row.Percent), '.'); i >= 0 && len(row.Percent)-i-1 > 2 {
				t.Errorf("%s: percent %s has more than 2 decimals", row.Area, row.Percent)
			}
			if row.Name == "" {
				t.Errorf("%s: no name", row.Area)
			}
		}
	}
	codes := func(rep *progressReport) []string {
		var out []string
		for _, r := range rep.Rows {
			out = append(out, r.Area)
		}
		return out
	}

	for _, k := range []struct {
		user, area string
		depth      int // -1: no depth parameter
		rows       []string
	}{
		{"steering-town", district, -1, []string{district, communeA, communeB}}, // default depth 1
		{"steering-town", district, 0, []string{district}},
		{"steering-town", district, 1, []string{district, communeA, communeB}},
		{"steering-town", district, 2, []string{district, communeA, eaA1, eaA2, eaA3, communeB, eaB1, eaB2}},
		{"steering-town", communeB, 1, []string{communeB, eaB1, eaB2}},
		{"steering-vn", nation, 2, []string{nation, province, district}},
		{"steering-vn", nation, broker.MaxProgressDepth, []string{nation, province, district, communeA, eaA1, eaA2, eaA3, communeB, eaB1, eaB2}},
		{"steering-a", communeA, 1, []string{communeA, eaA1, eaA2, eaA3}},
		{"enum-a1", eaA1, 1, []string{eaA1}},
		{"supervisor", eaB2, 3, []string{eaB2}},
	} {
		t.Run(fmt.Sprintf("%s at %s depth %d", k.user, k.area, k.depth), func(t *testing.T) {
			v := v.in(t)
			var (
				r   *response
				rep *progressReport
			)
			ev := v.oneEvent(func() { r, rep = v.progress(k.user, k.area, k.depth) })
			if rep == nil {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if rep.Area != k.area {
				t.Errorf("report area %s, want %s", rep.Area, k.area)
			}
			got := codes(rep)
			slices.Sort(got[1:])
			wantRows := slices.Clone(k.rows)
			slices.Sort(wantRows[1:])
			if !slices.Equal(got, wantRows) || rep.Rows[0].Area != k.area {
				t.Errorf("rows %v, want %v (the asked area first)", codes(rep), k.rows)
			}
			check(t, rep)
			if ev.Outcome != "ok" || ev.Decision != "allow" || ev.Area != k.area {
				t.Errorf("event %s/%s at %s", ev.Outcome, ev.Decision, ev.Area)
			}
		})
	}

	t.Run("no area: the caller's own", func(t *testing.T) {
		v := v.in(t)
		r := v.get("steering-a", "/v1/progress")
		var rep progressReport
		r.JSON(t, &rep)
		if r.Status != http.StatusOK || rep.Area != communeA {
			t.Errorf("status %d, area %q, want 200 for %s", r.Status, rep.Area, communeA)
		}
		// The Go client agrees with raw HTTP.
		cr, err := v.Client("steering-town").Progress(t.Context(), district, 1)
		if err != nil || len(cr.Rows) != 3 || cr.Rows[2].Percent != 83.33 && cr.Rows[1].Percent != 83.33 {
			t.Errorf("client.Progress = %+v, %v", cr, err)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		v := v.in(t)
		for _, k := range []struct {
			query  string
			status int
		}{
			{"area=99999", http.StatusNotFound},
			{"area=" + url.QueryEscape("../../etc"), http.StatusBadRequest},
			{"area=" + strings.Repeat("9", 33), http.StatusBadRequest},
			{"area=" + district + "&depth=9", http.StatusBadRequest},
			{"area=" + district + fmt.Sprintf("&depth=%d", broker.MaxProgressDepth+1), http.StatusBadRequest},
			{"area=" + district + "&depth=-1", http.StatusBadRequest},
			{"area=" + district + "&depth=two", http.StatusBadRequest},
			{"area=" + district + "&depth=99999999999999999999", http.StatusBadRequest},
		} {
			head := v.auditHead()
			r := v.get("steering-town", "/v1/progress?"+k.query)
			if r.Status != k.status {
				t.Errorf("%s: status %d, want %d: %s", k.query, r.Status, k.status, r.Body)
			}
			r.ErrorBody(t)
			evs := v.eventsSince(head)
			if len(evs) != 1 {
				t.Errorf("%s: %d audit events, want 1: a request rejected as invalid must be logged", k.query, len(evs))
				continue
			}
			if ev := evs[0]; ev.Action != "progress.read" || ev.Outcome == "ok" {
				t.Errorf("%s: event %s/%s, want a refused progress.read", k.query, ev.Action, ev.Outcome)
			}
		}
	})

	t.Run("percent is deposited/planned rounded to 2 decimals", func(t *testing.T) {
		for _, w := range all {
			if w.planned == 0 {
				continue
			}
			exact := float64(w.deposited) * 100 / float64(w.planned)
			if math.Abs(exact-w.percent) > 0.005 {
				t.Errorf("test table: %d/%d is %.4f, not %.2f", w.deposited, w.planned, exact, w.percent)
			}
		}
	})
}
