package broker

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind classifies a broker error. Each Kind maps to exactly one HTTP
// status, in broker/httpapi. The list only grows.
type Kind int

const (
	Internal        Kind = iota // a bug or an unexpected failure
	Invalid                     // the request is malformed or fails validation
	Unauthenticated             // no valid credentials
	Permission                  // authenticated, but policy says no
	NotFound                    // no such thing (or not visible to the caller)
	Conflict                    // clashes with what is stored
	TooLarge                    // body over the limit
	Unavailable                 // a dependency (database, key provider, audit log) failed; retry later
	Gone                        // destroyed on purpose (crypto-shredded keys); retrying will not help
	RateLimited                 // the caller sent more requests than its rate limit allows; retry after Error.RetryAfter
)

// String is the Kind for people: its code in words ("permission
// denied"), "internal error" for Internal.
func (k Kind) String() string {
	if c := k.Code(); c != "internal" {
		return strings.ReplaceAll(c, "_", " ")
	}
	return "internal error"
}

// Code is the Kind's stable machine code, the "code" of an error answer
// when the error names no more precise one. Codes never change once
// published: clients branch on them.
func (k Kind) Code() string {
	switch k {
	case Invalid:
		return "invalid"
	case Unauthenticated:
		return "unauthenticated"
	case Permission:
		return "permission_denied"
	case NotFound:
		return "not_found"
	case Conflict:
		return "conflict"
	case TooLarge:
		return "too_large"
	case Unavailable:
		return "unavailable"
	case Gone:
		return "gone"
	case RateLimited:
		return "rate_limited"
	default:
		return "internal"
	}
}

// Error is what every broker use case returns on failure. Msg is safe to
// show the client; Err is the detail, for the server log only. Neither
// ever holds a field value, key or token.
type Error struct {
	Kind Kind
	// Code is a stable machine code more precise than the Kind's
	// (receipt_corrupt, table_data_corrupt, …); empty means Kind.Code().
	Code     string
	Msg      string
	Problems []string // validation problems (field paths and rules, never values)
	// RetryAfter is when the same request may succeed (RateLimited);
	// zero: no advice.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode is the stable machine code of e: its own, or its Kind's.
func (e *Error) ErrorCode() string {
	if e.Code != "" {
		return e.Code
	}
	return e.Kind.Code()
}

func errorf(k Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf reports the Kind of err (Internal for errors not made here).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
