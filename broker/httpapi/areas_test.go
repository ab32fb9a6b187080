package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/wire"
)

// POST /v1/admin/areas/revisions, attacked: only an administrator
// revises the area tree, and is refused before its body is read; a bad
// document is refused naming the change, changes nothing and is
// recorded; a good one is answered with what it did, and every request
// after it reads the revised tree.
func TestAreaRevisionRoute(t *testing.T) {
	v := newVault(t, vaultOpts{})
	split := `{"note": "two villages", "changes": [{"op": "split", "code": "18070-01", "into": [
		{"code": "18070-11", "name": "Bắc", "planned": 2, "households": "1-10"},
		{"code": "18070-12", "name": "Nam", "planned": 1, "households": "11-"}]}]}`

	// Not an administrator: refused before the body is read, one event.
	var r *response
	ev := v.oneEvent(func() { r = v.adminReq("tl-a", "POST", "/v1/admin/areas/revisions", split) })
	mustStatus(t, "a team leader revising", r, http.StatusForbidden, "permission_denied")
	if ev.Action != "areas.revise" || ev.Outcome != "denied" {
		t.Errorf("event %+v", ev)
	}
	mustStatus(t, "no token", v.adminReq("", "POST", "/v1/admin/areas/revisions", split), http.StatusUnauthorized, "unauthenticated")

	// Bad requests: recorded, nothing changed.
	bad := `{"note": "n", "changes": [{"op": "plan", "code": "18070-02", "planned": 8}, {"op": "merge", "codes": ["18070-02"], "into": {"code": "x", "name": "x", "planned": 1}}]}`
	ev = v.oneEvent(func() { r = v.adminReq("admin", "POST", "/v1/admin/areas/revisions", bad) })
	mustStatus(t, "a merge of one EA", r, http.StatusBadRequest, "area_revision_invalid")
	if msg, _ := r.ErrorBody(t); !strings.Contains(msg, "changes[1] (merge): codes: a merge joins 2 to 100 EAs, not 1") {
		t.Errorf("message %q", msg)
	}
	if ev.Outcome != "invalid" || !strings.Contains(ev.Reason, "changes[1]") {
		t.Errorf("event %+v", ev)
	}
	mustStatus(t, "a query", v.adminReq("admin", "POST", "/v1/admin/areas/revisions?dry=1", split), http.StatusBadRequest, "invalid")
	mustStatus(t, "too large", v.adminReq("admin", "POST", "/v1/admin/areas/revisions", `{"note": "`+strings.Repeat("x", area.MaxRevisionBytes)+`"}`),
		http.StatusRequestEntityTooLarge, "too_large")
	if v.B.Geography().Revision() != 0 {
		t.Fatal("a refused revision is in force")
	}

	// The split: 201 with what it did (enum-a1 and enum-a1-bis were
	// granted the old EA), and the tree every later request reads.
	ev = v.oneEvent(func() { r = v.adminReq("admin", "POST", "/v1/admin/areas/revisions", split) })
	if r.Status != http.StatusCreated {
		t.Fatalf("split: %d %s", r.Status, r.Body)
	}
	var got wire.AreaRevision
	r.JSON(t, &got)
	if got.Revision != 1 || got.Split != 1 || got.GrantsMoved != 2 || got.GrantsAdded != 4 || len(got.SHA256) != 64 || got.AuditIndex != ev.Index {
		t.Errorf("answer %+v (event %d)", got, ev.Index)
	}
	if ev.Outcome != "ok" || !strings.Contains(ev.Reason, got.SHA256) || ev.Actor != "user:admin" {
		t.Errorf("event %+v", ev)
	}
	var rep broker.ProgressReport
	pr := v.get("steering-a", "/v1/progress?area="+communeA+"&depth=1")
	pr.JSON(t, &rep)
	var codes []string
	for _, row := range rep.Rows {
		codes = append(codes, string(row.Area))
	}
	if strings.Join(codes, " ") != "18070 18070-11 18070-12 18070-02 18070-03" {
		t.Errorf("progress rows after the split: %v", codes)
	}
	mustStatus(t, "the same split again", v.adminReq("admin", "POST", "/v1/admin/areas/revisions", split), http.StatusBadRequest, "area_revision_invalid")
}
