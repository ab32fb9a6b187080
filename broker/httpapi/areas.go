package httpapi

import (
	"net/http"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/gin-gonic/gin"
)

// Revisions of the area tree (issue 14): an administrator posts a
// revision document; the broker checks it against the tree in force and
// what is stored, and applies it with the grants it moves, audited.

// actionAreasRevise is the audit action of a revision and of its
// refusals made here.
const actionAreasRevise = "areas.revise"

// reviseAreas answers POST /v1/admin/areas/revisions: the body is a
// revision document (JSON, at most area.MaxRevisionBytes).
func (h *handler) reviseAreas(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.b.MayAdminister(ctx, caller, actionAreasRevise); err != nil {
		return err
	}
	if err := h.noQuery(c, caller, actionAreasRevise); err != nil {
		return err
	}
	body, err := h.adminBody(c, caller, actionAreasRevise, area.MaxRevisionBytes, ": split the revision into several")
	if err != nil {
		return err
	}
	res, err := h.b.ReviseAreas(ctx, broker.APIOperator(caller), body)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, res.Wire())
	return nil
}
