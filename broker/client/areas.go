package client

import (
	"bytes"
	"context"
	"net/http"

	"github.com/censusvault/censusvault/broker/wire"
)

// ReviseAreas sends a revision document of the area tree (its bytes, as
// written) to POST /v1/admin/areas/revisions, as an administrator.
func (c *Client) ReviseAreas(ctx context.Context, doc []byte) (*wire.AreaRevision, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/admin/areas/revisions", bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var r wire.AreaRevision
	if _, err := c.do(req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
