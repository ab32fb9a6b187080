package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/censusvault/censusvault/broker/wire"
)

// ReleasePoints lists the publication points, oldest first: the names a
// standard table request's "as_of" takes.
func (c *Client) ReleasePoints(ctx context.Context) ([]wire.ReleasePoint, error) {
	var out struct {
		Points []wire.ReleasePoint `json:"release_points"`
	}
	if err := c.getJSON(ctx, "/v1/release-points", &out); err != nil {
		return nil, err
	}
	return out.Points, nil
}

// CreateReleasePoint makes the next publication point (an approver's
// act): the data as it is now, frozen under the k-rule, named name.
func (c *Client) CreateReleasePoint(ctx context.Context, name string) (*wire.ReleasePoint, error) {
	body, err := json.Marshal(map[string]string{"name": name})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/release-points", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var p wire.ReleasePoint
	if _, err := c.do(req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Catalogue fetches the catalogue of standard tables.
func (c *Client) Catalogue(ctx context.Context) (*wire.Catalogue, error) {
	var cat wire.Catalogue
	if err := c.getJSON(ctx, "/v1/catalogue", &cat); err != nil {
		return nil, err
	}
	return &cat, nil
}
