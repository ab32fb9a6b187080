package client

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/censusvault/censusvault/broker/wire"
)

// Media types of a form definition (POST /v1/admin/forms).
const (
	FormJSON = "application/json"
	FormXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
)

// Forms lists the vault's form registry (GET /v1/forms).
func (c *Client) Forms(ctx context.Context) (*wire.FormList, error) {
	var l wire.FormList
	if err := c.getJSON(ctx, "/v1/forms", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Form returns one form version: its canonical definition and the JSON
// Schema of a submission made with it (GET /v1/forms/{name}/{version}).
func (c *Client) Form(ctx context.Context, name string, version int) (*wire.FormDefinition, error) {
	var d wire.FormDefinition
	if err := c.getJSON(ctx, "/v1/forms/"+url.PathEscape(name)+"/"+strconv.Itoa(version), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// AddForm adds a form definition (POST /v1/admin/forms): an XLSForm
// workbook when it starts with a zip header, JSON otherwise.
func (c *Client) AddForm(ctx context.Context, definition []byte) (*wire.FormAdded, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/admin/forms", bytes.NewReader(definition))
	if err != nil {
		return nil, err
	}
	ct := FormJSON
	if bytes.HasPrefix(definition, []byte("PK\x03\x04")) {
		ct = FormXLSX
	}
	req.Header.Set("Content-Type", ct)
	var a wire.FormAdded
	if _, err := c.do(req, &a); err != nil {
		return nil, err
	}
	return &a, nil
}
