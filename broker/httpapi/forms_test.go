package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/wire"
)

const xlsxType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// v2Definition is census2019 version 2: ethnicity identifying, and the
// classes of the other person fields named in classes.
func v2Definition(t *testing.T, classes ...string) []byte {
	t.Helper()
	b, err := form.Default().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	def["version"] = 2
	set := map[string]string{"ethnicity": "identifying"}
	for i := 0; i+1 < len(classes); i += 2 {
		set[classes[i]] = classes[i+1]
	}
	for _, f := range def["person"].([]any) {
		fd := f.(map[string]any)
		if c, ok := set[fd["name"].(string)]; ok {
			fd["class"] = c
		}
	}
	out, _ := json.Marshal(def)
	return out
}

// postForm posts a definition as user with Content-Type ct.
func (v *vault) postForm(user, ct string, body []byte) *response {
	v.t.Helper()
	auth := ""
	if user != "" {
		auth = "Bearer " + v.Tokens[user]
	}
	hdr := map[string]string{}
	if ct != "" {
		hdr["Content-Type"] = ct
	}
	return v.do(http.MethodPost, "/v1/admin/forms", auth, bytes.NewReader(body), hdr)
}

// TestFormRoutesAuthorization: every user reads the forms (a device
// needs the schema), nobody unauthenticated does (401); only the admin
// adds one, every other role is refused 403 before its body is read (a
// body over the limit is still 403, not 413), and each refusal is
// audited; unauthenticated adds are 401.
func TestFormRoutesAuthorization(t *testing.T) {
	v := newVault(t, vaultOpts{})
	for user := range v.Tokens {
		if r := v.get(user, "/v1/forms"); r.Status != http.StatusOK {
			t.Errorf("%s lists the forms: %d %s", user, r.Status, r.Body)
		}
		if r := v.get(user, "/v1/forms/census2019/1"); r.Status != http.StatusOK {
			t.Errorf("%s reads census2019 v1: %d %s", user, r.Status, r.Body)
		}
	}
	for _, path := range []string{"/v1/forms", "/v1/forms/census2019/1"} {
		r := v.do(http.MethodGet, path, "", nil, nil)
		if r.Status != http.StatusUnauthorized || r.Code(t) != "unauthenticated" {
			t.Errorf("unauthenticated GET %s: %d %s", path, r.Status, r.Body)
		}
	}
	if r := v.postForm("", "application/json", v2Definition(t)); r.Status != http.StatusUnauthorized || r.Code(t) != "unauthenticated" {
		t.Errorf("unauthenticated add: %d %s", r.Status, r.Body)
	}
	big := bytes.Repeat([]byte(" "), 11<<20)
	for user := range v.Tokens {
		if user == "admin" {
			continue
		}
		var r *response
		e := v.oneEvent(func() { r = v.postForm(user, "application/json", v2Definition(t)) })
		if r.Status != http.StatusForbidden || r.Code(t) != "permission_denied" {
			t.Errorf("%s adds a form: %d %s", user, r.Status, r.Body)
		}
		if e.Action != "form.add" || e.Decision != "deny" || e.Outcome != "denied" {
			t.Errorf("event of %s's add: %+v", user, e)
		}
		if r := v.postForm(user, "application/json", big); r.Status != http.StatusForbidden {
			t.Errorf("%s adds an oversized form: %d (refused before the body is read: 403)", user, r.Status)
		}
	}
	r := v.postForm("admin", "application/json", v2Definition(t))
	if r.Status != http.StatusCreated {
		t.Fatalf("the admin adds version 2: %d %s", r.Status, r.Body)
	}
	if r := v.postForm("admin", "application/json", big); r.Status != http.StatusRequestEntityTooLarge || r.Code(t) != "too_large" {
		t.Errorf("the admin's oversized form: %d %s", r.Status, r.Body)
	}
}

// TestFormRoutes: the admin adds census2019 version 2 as JSON (201
// added), again (200 unchanged); a device reads it with its schema, and
// its ETag (the SHA-256) gets 304; a household under it is deposited and
// its event names the SHA-256; a change of the now used version is 409
// form_version_in_use; wrong types, names and versions are refused with
// stable codes; an XLSForm workbook is accepted as such.
func TestFormRoutes(t *testing.T) {
	v := newVault(t, vaultOpts{})
	def := v2Definition(t)
	r := v.postForm("admin", "application/json; charset=utf-8", def)
	var a wire.FormAdded
	r.JSON(t, &a)
	if r.Status != http.StatusCreated || a.Outcome != wire.FormAddedNew || a.Name != "census2019" || a.Version != 2 || a.AuditIndex == nil ||
		!slices.Contains(a.Reclassified, "person.ethnicity analytic→identifying") {
		t.Fatalf("add: %d %s", r.Status, r.Body)
	}
	r = v.postForm("admin", "application/json", def)
	var u wire.FormAdded
	r.JSON(t, &u)
	if r.Status != http.StatusOK || u.Outcome != wire.FormAddedUnchanged || u.SHA256 != a.SHA256 || u.AuditIndex != nil {
		t.Errorf("the same definition again: %d %s", r.Status, r.Body)
	}

	r = v.get("enum-a1", "/v1/forms/census2019/2")
	var d wire.FormDefinition
	r.JSON(t, &d)
	if r.Status != http.StatusOK || d.SHA256 != a.SHA256 || r.Header.Get("ETag") != `"`+a.SHA256+`"` ||
		r.Header.Get("Cache-Control") != "private, no-cache" || !bytes.Contains(d.Schema, []byte(`"x-constraints"`)) {
		t.Fatalf("read version 2: %d %v %s", r.Status, r.Header, r.Body[:min(len(r.Body), 200)])
	}
	f, err := form.Parse(d.Definition)
	if err != nil {
		t.Fatal(err)
	}
	if _, sum, _ := f.Digest(); sum != a.SHA256 {
		t.Errorf("the definition served hashes to %s, its SHA-256 says %s", sum, a.SHA256)
	}
	r = v.do(http.MethodGet, "/v1/forms/census2019/2", "Bearer "+v.Tokens["enum-a1"], nil, map[string]string{"If-None-Match": `"` + a.SHA256 + `"`})
	if r.Status != http.StatusNotModified || len(r.Body) != 0 {
		t.Errorf("If-None-Match with the ETag: %d %s", r.Status, r.Body)
	}

	m := household(eaA1, 1)
	m["form_version"] = 2
	rec := v.receipt(v.deposit("enum-a1", v.seal(encode(t, m))), http.StatusCreated)
	evs := v.eventsSince(rec.AuditIndex)
	if len(evs) == 0 || evs[0].Action != "submission.deposit" || evs[0].FormSHA256 != a.SHA256 {
		t.Errorf("the deposit's event does not name version 2's SHA-256")
	}
	var l wire.FormList
	v.get("enum-a1", "/v1/forms").JSON(t, &l)
	if len(l.Forms) < 2 || !l.Forms[1].InUse || l.Forms[1].Version != 2 {
		t.Errorf("list after the deposit: %+v", l.Forms)
	}

	hostile := v2Definition(t, "full_name", "analytic")
	e2 := v.oneEvent(func() { r = v.postForm("admin", "application/json", hostile) })
	if r.ErrorBody(t); r.Status != http.StatusConflict || r.Code(t) != "form_version_in_use" || e2.Outcome != "refused" {
		t.Errorf("the admin changes the used version: %d %s (event %+v)", r.Status, r.Body, e2)
	}

	for _, c := range []struct {
		name, ct string
		body     []byte
		status   int
		code     string
	}{
		{"no Content-Type", "", def, 400, "unsupported_media_type"},
		{"text/plain", "text/plain", def, 400, "unsupported_media_type"},
		{"a zip as JSON", "application/json", []byte("PK\x03\x04rest"), 400, "unsupported_media_type"},
		{"JSON as a workbook", xlsxType, def, 400, "form_invalid"},
		{"not a form", "application/json", []byte(`{"name":"x"}`), 400, "form_invalid"},
		{"the built-in version changed", "application/json", bytes.Replace(def, []byte(`"version":2`), []byte(`"version":1`), 1), 409, "form_builtin"},
	} {
		r := v.postForm("admin", c.ct, c.body)
		if msg, _ := r.ErrorBody(t); r.Status != c.status || r.Code(t) != c.code || msg == "" {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.Status, r.Body, c.status, c.code)
		}
	}
	for path, want := range map[string]string{
		"/v1/forms/census2019/3":    "no_such_form",
		"/v1/forms/Census2019/1":    "invalid",
		"/v1/forms/census2019/01":   "invalid",
		"/v1/forms/census2019/0":    "invalid",
		"/v1/forms/census2019/-1":   "invalid",
		"/v1/forms/census2019/1?x=": "invalid",
		"/v1/forms?x=1":             "invalid",
	} {
		r := v.get("enum-a1", path)
		if r.Code(t) != want || r.Status/100 != 4 {
			t.Errorf("GET %s: %d %s, want %s", path, r.Status, r.Body, want)
		}
	}

	// An XLSForm workbook is read as one.
	wb, err := os.ReadFile("../form/testdata/xlsform/lfs2026.xlsx")
	if err != nil {
		t.Fatal(err)
	}
	r = v.postForm("admin", xlsxType, wb)
	switch {
	case r.Status == http.StatusCreated:
		var x wire.FormAdded
		r.JSON(t, &x)
		if x.Name != "lfs2026" || x.Builtin {
			t.Errorf("the workbook added %+v", x)
		}
	case r.Status == http.StatusConflict && r.Code(t) == "form_builtin", r.Status == http.StatusOK:
		// lfs2026 v1 is built in: the workbook was read, and is that version.
	default:
		t.Errorf("the lfs2026 workbook: %d %s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), "PK") {
		t.Error("the answer quotes the workbook's bytes")
	}
}
