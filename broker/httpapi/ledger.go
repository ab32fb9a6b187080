package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/censusvault/censusvault/policy"
	"github.com/gin-gonic/gin"
)

// Response headers of a dp table (a custom table under differential
// privacy), besides those of every table.
const (
	// HeaderRho is the table's ρ (zCDP), a decimal such as "0.02".
	HeaderRho = "X-Censusvault-Rho"
	// HeaderRepeat is "true" when the table repeats a query answered
	// before at the same point: the same table, charged to nothing.
	HeaderRepeat = "X-Censusvault-Repeat"
)

// Audit actions of the ledger routes' refusals made here (the broker
// records the others under the same names).
const (
	actionLedgerRead    = "ledger.read"
	actionShareProposal = "ledger.propose"
	actionShareApproval = string(policy.ApproveShare)
)

// maxShareBody bounds POST /v1/ledger/proposals' body: kind, holder, a
// decimal ρ and a reason of at most 500 bytes, which JSON escapes may
// double.
const maxShareBody = 2 << 10

func (h *handler) ledger(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, actionLedgerRead); err != nil {
		return err
	}
	l, err := h.b.LedgerFor(c.Request.Context(), caller)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, l)
	return nil
}

func (h *handler) proposeShare(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.noQuery(c, caller, actionShareProposal); err != nil {
		return err
	}
	var req struct {
		Kind   string `json:"kind"`
		Holder string `json:"holder"`
		Rho    string `json:"rho"`
		Reason string `json:"reason"`
	}
	body, err := readSmallBody(c, maxShareBody)
	if err != nil {
		return h.b.Invalid(ctx, caller, actionShareProposal, err.Error())
	}
	if err := strictjson.Decode(body, &req); err != nil {
		msg := err.Error()
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = "every member is a string (rho too: a decimal such as \"0.4\")" // not Go's type names
		}
		return h.b.Invalid(ctx, caller, actionShareProposal, `the body is {"kind": "commune"|"researcher"|"project", "holder": NAME, "rho": "0.4", "reason": TEXT}: `+msg)
	}
	ch, err := h.b.ProposeShare(ctx, caller, req.Kind, req.Holder, req.Rho, req.Reason)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, ch)
	return nil
}

func (h *handler) approveShare(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.noQuery(c, caller, actionShareApproval); err != nil {
		return err
	}
	seq, ok := parseCount(c.Param("seq"))
	if !ok {
		return h.b.Invalid(ctx, caller, actionShareApproval, "the proposal is named by its seq, a whole number in decimal without sign or leading zero (GET /v1/ledger lists them)")
	}
	// The route takes no body: one sent is a client that means something
	// else than a plain approval, and is told so rather than ignored.
	body, err := readSmallBody(c, 0)
	if err != nil || len(body) > 0 {
		return h.b.Invalid(ctx, caller, actionShareApproval, "approving a share proposal takes no body: POST to /v1/ledger/proposals/SEQ/approve with none")
	}
	ch, err := h.b.ApproveShare(ctx, caller, seq)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, ch)
	return nil
}
