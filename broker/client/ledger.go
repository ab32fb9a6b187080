package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/censusvault/censusvault/broker/wire"
)

// Ledger fetches the privacy ledger of dp tables: the shares the caller
// may see (a researcher the commune cap, their own share and their
// projects'), what each has spent in its worst commune, and the proposed
// changes.
func (c *Client) Ledger(ctx context.Context) (*wire.Ledger, error) {
	var l wire.Ledger
	if err := c.getJSON(ctx, "/v1/ledger", &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ProposeShare proposes a new ρ for one ledger share: kind is "commune"
// (holder ""), "researcher" or "project"; rho a decimal ("0.4"); reason
// says why, for the approver and the audit log. Nothing changes until an
// approver other than the proposer approves it (ApproveShare).
func (c *Client) ProposeShare(ctx context.Context, kind, holder, rho, reason string) (*wire.ShareChange, error) {
	body, err := json.Marshal(map[string]string{"kind": kind, "holder": holder, "rho": rho, "reason": reason})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/ledger/proposals", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var ch wire.ShareChange
	if _, err := c.do(req, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// ApproveShare approves share proposal seq (an approver's act; never the
// proposer's own: the vault answers 403 four_eyes).
func (c *Client) ApproveShare(ctx context.Context, seq int64) (*wire.ShareChange, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/ledger/proposals/"+strconv.FormatInt(seq, 10)+"/approve", nil)
	if err != nil {
		return nil, err
	}
	var ch wire.ShareChange
	if _, err := c.do(req, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}
