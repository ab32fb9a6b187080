package audit_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/censusvault/censusvault/audit"
)

// jsonEvent reads an event with encoding/json, an independent parser, to
// check that Decode accepts only JSON that means what Decode says it means.
type jsonEvent struct {
	Action        *string   `json:"action"`
	Actor         *string   `json:"actor"`
	Area          *string   `json:"area"`
	Decision      *string   `json:"decision"`
	Index         *int64    `json:"index"`
	Nonce         *string   `json:"nonce"`
	Outcome       *string   `json:"outcome"`
	PolicyHash    *string   `json:"policy_hash"`
	Purpose       *string   `json:"purpose"`
	Reason        *string   `json:"reason"`
	ReleaseDigest *string   `json:"release_digest"`
	Request       *string   `json:"request"`
	Resources     *[]string `json:"resources"`
	Roles         *[]string `json:"roles"`
	Rule          *string   `json:"rule"`
	Time          *string   `json:"time"`
	V             *int      `json:"v"`
}

// FuzzDecode checks that anything Decode accepts is canonical (re-encodes
// to the identical bytes), is valid JSON, and that encoding/json reads the
// same values from it.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(katBytes))
	f.Add([]byte(zeroBytes))
	f.Add([]byte(releaseBytes))
	// Not accepted: an empty request, and a request that is not a string.
	f.Add([]byte(strings.Replace(zeroBytes, `"release_digest":"",`, `"release_digest":"","request":"",`, 1)))
	f.Add([]byte(strings.Replace(zeroBytes, `"release_digest":"",`, `"release_digest":"","request":{"as_of":1},`, 1)))
	// Accepted: a request needing escapes.
	f.Add([]byte(strings.Replace(zeroBytes, `"release_digest":"",`, `"release_digest":"","request":"{\"k\":\"\u0000\\n\"}",`, 1)))
	// Version 2: accepted with its nonce; not without, nor with a short,
	// upper-case or version-1 one.
	f.Add([]byte(katV2Bytes))
	f.Add([]byte(strings.Replace(katV2Bytes, `"nonce":"000102030405060708090a0b0c0d0e0f",`, ``, 1)))
	f.Add([]byte(strings.Replace(katV2Bytes, `0e0f"`, `0e"`, 1)))
	f.Add([]byte(strings.Replace(katV2Bytes, `0a0b0c0d0e0f`, `0A0B0C0D0E0F`, 1)))
	f.Add([]byte(strings.Replace(katV2Bytes, `"v":2}`, `"v":1}`, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := audit.Decode(b)
		if err != nil {
			if e != nil {
				t.Fatalf("Decode returned an event with error %v", err)
			}
			return
		}
		enc, err := e.Encode()
		if err != nil {
			t.Fatalf("Decode accepted %q but Encode fails: %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("Decode accepted %q, which re-encodes to %q", b, enc)
		}
		if !json.Valid(b) {
			t.Fatalf("Decode accepted invalid JSON %q", b)
		}
		var j jsonEvent
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			t.Fatalf("encoding/json rejects %q: %v", b, err)
		}
		if j.V == nil || *j.V != audit.Version1 && *j.V != audit.Version2 || j.Index == nil || *j.Index != e.Index || j.Time == nil ||
			j.Roles == nil || j.Resources == nil {
			t.Fatalf("encoding/json reads %+v from %q", j, b)
		}
		// "nonce" is present exactly in version 2, as 16 bytes of hex.
		if (j.Nonce != nil) != (*j.V == audit.Version2) || (j.Nonce != nil) != (e.Nonce != nil) ||
			j.Nonce != nil && *j.Nonce != hex.EncodeToString(e.Nonce) || e.Nonce != nil && len(e.Nonce) != audit.NonceSize {
			t.Fatalf("encoding/json and Decode disagree on the nonce of %q: %v vs %x", b, j.Nonce, e.Nonce)
		}
		strs := []struct {
			got  *string
			want string
		}{
			{j.Action, e.Action}, {j.Actor, e.Actor}, {j.Area, e.Area},
			{j.Decision, e.Decision}, {j.Outcome, e.Outcome},
			{j.PolicyHash, e.PolicyHash}, {j.Purpose, e.Purpose},
			{j.Reason, e.Reason}, {j.ReleaseDigest, e.ReleaseDigest}, {j.Rule, e.Rule},
		}
		for _, s := range strs {
			if s.got == nil || *s.got != s.want {
				t.Fatalf("encoding/json and Decode disagree on %q: %v vs %q", b, s.got, s.want)
			}
		}
		// "request" is present exactly when not empty.
		if (j.Request == nil) != (e.Request == "") || j.Request != nil && *j.Request != e.Request {
			t.Fatalf("encoding/json and Decode disagree on the request of %q: %v vs %q", b, j.Request, e.Request)
		}
		if len(*j.Roles) != len(e.Roles) || len(e.Roles) > 0 && !reflect.DeepEqual(*j.Roles, e.Roles) ||
			len(*j.Resources) != len(e.Resources) || len(e.Resources) > 0 && !reflect.DeepEqual(*j.Resources, e.Resources) {
			t.Fatalf("encoding/json and Decode disagree on arrays of %q", b)
		}
	})
}
