package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/internal/strictjson"
	"github.com/gin-gonic/gin"
)

// HeaderPoint names the publication point a standard table was computed at.
const HeaderPoint = "X-Censusvault-Point"

// maxPointBody bounds POST /v1/release-points' body: {"name": …}.
const maxPointBody = 1 << 10

func (h *handler) listPoints(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, "release_point.list"); err != nil {
		return err
	}
	ps, err := h.b.ReleasePointsFor(c.Request.Context(), caller)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"release_points": ps})
	return nil
}

func (h *handler) createPoint(c *gin.Context, caller *broker.Caller) error {
	ctx := c.Request.Context()
	if err := h.noQuery(c, caller, "release_point.create"); err != nil {
		return err
	}
	var req struct {
		Name string `json:"name"`
	}
	body, err := readSmallBody(c, maxPointBody)
	if err != nil {
		return h.b.Invalid(ctx, caller, "release_point.create", err.Error())
	}
	if err := strictjson.Decode(body, &req); err != nil {
		msg := err.Error()
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = "the body is not an object with a string name" // not Go's type names
		}
		return h.b.Invalid(ctx, caller, "release_point.create", `the body is {"name": NAME}: `+msg)
	}
	p, err := h.b.CreateReleasePointAs(ctx, caller, req.Name)
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, p)
	return nil
}

func (h *handler) catalogue(c *gin.Context, caller *broker.Caller) error {
	if err := h.noQuery(c, caller, "catalogue.read"); err != nil {
		return err
	}
	cat, err := h.b.CatalogueFor(c.Request.Context(), caller)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, cat)
	return nil
}

// readSmallBody reads a body of at most limit bytes.
func readSmallBody(c *gin.Context, limit int64) ([]byte, error) {
	if c.Request.ContentLength > limit {
		return nil, fmt.Errorf("the body is over %d bytes", limit)
	}
	b, err := io.ReadAll(io.LimitReader(http.MaxBytesReader(c.Writer, c.Request.Body, limit+1), limit+1))
	if err != nil {
		return nil, errors.New("the request body could not be read")
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("the body is over %d bytes", limit)
	}
	return b, nil
}

// noQuery refuses (and audits, as action) a query string on a route that
// takes none.
func (h *handler) noQuery(c *gin.Context, caller *broker.Caller, action string) error {
	if _, bad := queryParams(c.Request.URL.RawQuery); bad != "" {
		return h.b.Invalid(c.Request.Context(), caller, action, bad+" (this route takes no parameters)")
	}
	return nil
}
