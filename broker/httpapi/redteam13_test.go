package httpapi_test

// Red team of issue 13 over HTTP: attacks the vault stops, each naming
// the protection that stops it. (The attacks that succeeded are reported
// apart, with their tests.)

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/policy"
)

// rt13Areas is the test tree with a second province (Hà Nội, 01).
const rt13Areas = testAreas + `01,VN,province,Thành phố Hà Nội,
001,01,district,Quận Ba Đình,
00001,001,commune,Phường Phúc Xá,
00001-01,00001,ea,Địa bàn 01,5
`

// TestRedteam13ExplainEventOracle is the attack of an auditor of one
// province (Hà Tĩnh) who asks explain about audit events by index to
// learn about the rest of the country: whether event N exists (so the
// log's live size), and where it happened. An event of Hà Nội, an index
// just past the log's head and one far beyond all get the same 403,
// word for word but the index, naming no area; each refusal is audited;
// an event of its own province is explained (200). Protection:
// ExplainEvent authorizes an unknown index at the root and refuses with
// one message whatever the event (eventRefusal); seen failing (404 for
// an index past the head) with the unknown index answered NotFound
// before any authorization.
func TestRedteam13ExplainEventOracle(t *testing.T) {
	v := newVault(t, vaultOpts{areas: rt13Areas})
	v.addUser("auditor-42", broker.NewUser{Role: policy.Auditor, Area: province})
	v.addUser("enum-hn", broker.NewUser{Role: policy.Enumerator, Area: "00001-01"})
	v.depositAs("enum-a1", viewHousehold(eaA1, 1))
	ours := v.auditHead() - 1
	v.depositAs("enum-hn", viewHousehold("00001-01", 1))
	theirs := v.auditHead() - 1
	if evs := v.eventsSince(ours); evs[0].Area != eaA1 || evs[len(evs)-1].Area != "00001-01" {
		t.Fatalf("the deposits' events are at %s and %s", evs[0].Area, evs[len(evs)-1].Area)
	}
	explain := func(index int64) *response {
		return v.get("auditor-42", "/v1/policy/explain?event="+strconv.FormatInt(index, 10))
	}
	if r := explain(ours); r.Status != http.StatusOK {
		t.Fatalf("the auditor of %s explains an event of its province: %d %s", province, r.Status, r.Body)
	}
	head := v.auditHead()
	var bodies [][]byte
	for _, index := range []int64{theirs, head + 3, 1 << 40} {
		before := v.auditHead()
		r := explain(index)
		mustStatus(t, "explain of event "+strconv.FormatInt(index, 10), r, http.StatusForbidden, "permission_denied")
		bodies = append(bodies, bytes.ReplaceAll(r.Body, []byte(strconv.FormatInt(index, 10)), []byte("N")))
		for _, area := range []string{"00001-01", "00001", "001", "Hà Nội"} {
			if bytes.Contains(r.Body, []byte(area)) {
				t.Errorf("the refusal of event %d names %s: %s", index, area, r.Body)
			}
		}
		evs := v.eventsSince(before)
		if len(evs) != 1 || evs[0].Decision != "deny" || evs[0].Actor != "user:auditor-42" {
			t.Errorf("the refusal of event %d is not one deny event of the auditor: %d events", index, len(evs))
		}
	}
	if !bytes.Equal(bodies[0], bodies[1]) || !bytes.Equal(bodies[1], bodies[2]) {
		t.Fatalf("the refusals differ: an event of Hà Nội %s, past the head %s, far beyond %s", bodies[0], bodies[1], bodies[2])
	}
	// Nor may it ask about Hà Nội now.
	r := v.get("auditor-42", "/v1/policy/explain?user=enum-hn&action=submission.deposit&area=00001-01")
	mustStatus(t, "explain at an area of another province", r, http.StatusForbidden, "permission_denied")
}
