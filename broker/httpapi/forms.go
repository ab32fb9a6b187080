package httpapi

import (
	"bytes"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/censusvault/censusvault/broker"
	"github.com/gin-gonic/gin"
)

// The form registry (issue 14):
//
//	GET  /v1/forms                   any authenticated user: {"forms": [{"name", "version",
//	                                 "title", "sha256", "builtin", "added_at", "added_by",
//	                                 "in_use"}]}, in (name, version) order
//	GET  /v1/forms/{name}/{version}  any authenticated user: {…the list's fields, "definition"
//	                                 (the canonical definition), "schema" (the JSON Schema of a
//	                                 submission, with its x-constraints)}; ETag "SHA256" and
//	                                 Cache-Control private, no-cache: If-None-Match with it is
//	                                 answered 304; 404 no_such_form
//	POST /v1/admin/forms             form.add over the whole tree (admin): the body is the
//	                                 definition, Content-Type application/json or
//	                                 application/vnd.openxmlformats-officedocument.spreadsheetml.sheet
//	                                 (at most 10 MB); 201 {…the list's fields, "outcome" (added,
//	                                 replaced), "previous_sha256", "reclassified", "audit_index"}
//	                                 or 200 {"outcome": "unchanged"}; 400 form_invalid,
//	                                 unsupported_media_type; 409 form_builtin, form_version_in_use
//
// Who may read forms: every authenticated user. A device needs the
// definition and the schema of the form it fills in, and a definition
// holds no census data (names of questions, code lists, classes); the
// read is audited all the same, as every authenticated request is. The
// public key routes need no token; the forms do, so that who fetched
// which version stays in the log.

// Media types of a form definition.
const (
	mediaJSON = "application/json"
	mediaXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
)

// Audit actions of the refusals made here (the broker records the others
// under the same names).
const (
	actionFormList = "form.list"
	actionFormShow = "form.show"
	actionFormAdd  = "form.add"
)

func (h *handler) listForms(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionFormList); err != nil {
		return err
	}
	l, err := h.b.FormsFor(c.Request.Context(), caller)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, l)
	return nil
}

// validFormName reports whether s can be a form's name: [a-z][a-z0-9_]*,
// at most 64 bytes (the form package's grammar).
func validFormName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
}

func (h *handler) showForm(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	invalid := func(msg string) error { return h.b.Invalid(ctx, caller, actionFormShow, msg) }
	if err := h.noQuery(c, caller, actionFormShow); err != nil {
		return err
	}
	name := c.Param("name")
	if !validFormName(name) {
		return invalid("form name " + strconv.Quote(clipParam(name)) + ": form names are 1–64 of a-z, 0-9 and _, starting with a letter")
	}
	v, ok := parseCount(c.Param("version"))
	if !ok || v < 1 || v > 1_000_000 {
		return invalid("form version " + strconv.Quote(clipParam(c.Param("version"))) + ": a whole number from 1 to 1000000, in decimal")
	}
	d, err := h.b.FormFor(ctx, caller, name, int(v))
	if err != nil {
		return err
	}
	// The definition of a version changes only while no submission uses
	// it, and then its SHA-256 changes too: a client may keep it and ask
	// again with If-None-Match.
	etag := `"` + d.SHA256 + `"`
	c.Header("Cache-Control", "private, no-cache")
	c.Header("ETag", etag)
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimPrefix(strings.TrimSpace(t), "W/"); t == etag || t == "*" {
				c.Status(http.StatusNotModified)
				return nil
			}
		}
	}
	c.JSON(http.StatusOK, d)
	return nil
}

// addForm adds a form version. A caller who may not add forms is refused
// before the body is read.
func (h *handler) addForm(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAddForms(ctx, caller); err != nil {
		return err
	}
	unsupported := func(msg string) error {
		return h.b.UnsupportedFormType(ctx, caller, msg)
	}
	if err := h.noQuery(c, caller, actionFormAdd); err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var file string
	switch {
	case err == nil && mt == mediaJSON:
		file = "form.json"
	case err == nil && mt == mediaXLSX:
		file = "form.xlsx"
	default:
		return unsupported("Content-Type must be " + mediaJSON + " (a JSON definition) or " + mediaXLSX + " (an XLSForm workbook)")
	}
	body, err := h.adminBody(c, caller, actionFormAdd, broker.MaxFormFile, "")
	if err != nil {
		return err
	}
	if file == "form.json" && bytes.HasPrefix(body, []byte("PK\x03\x04")) {
		return unsupported("the body is a zip file (an .xlsx workbook?) but Content-Type says " + mediaJSON + ": send it as " + mediaXLSX)
	}
	a, err := h.b.AddForm(ctx, broker.APIOperator(caller), file, body)
	if err != nil {
		return err
	}
	st := http.StatusCreated
	if a.AuditIndex == nil {
		st = http.StatusOK
	}
	c.JSON(st, a)
	return nil
}
