package area_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/censusvault/censusvault/broker/area"
)

// FuzzParseCSV checks that Load never panics, that refusals are *area.Error,
// and that an accepted file round-trips through WriteCSV and Load to the
// same rows (ignoring Line, which blank lines can shift).
func FuzzParseCSV(f *testing.F) {
	f.Add([]byte(small))
	f.Add([]byte(hdr + "VN,,nation,n,\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, err := area.ParseCSV(bytes.NewReader(in))
		tr, err2 := area.Load(bytes.NewReader(in))
		if err != nil {
			if err2 == nil {
				t.Fatal("ParseCSV failed but Load succeeded")
			}
			var ae *area.Error
			if !errors.As(err, &ae) {
				t.Fatalf("ParseCSV error %T: %v", err, err)
			}
			return
		}
		if err2 != nil {
			var ae *area.Error
			if !errors.As(err2, &ae) {
				t.Fatalf("NewTree error %T: %v", err2, err2)
			}
			return
		}
		var buf bytes.Buffer
		if err := tr.WriteCSV(&buf); err != nil {
			t.Fatal(err)
		}
		tr2, err := area.Load(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("reloading WriteCSV output: %v\n%s", err, buf.Bytes())
		}
		got := tr2.Rows()
		if len(got) != len(rows) {
			t.Fatalf("%d rows after round trip, want %d", len(got), len(rows))
		}
		for i := range rows {
			want := rows[i]
			want.Line = got[i].Line
			if !reflect.DeepEqual(got[i], want) {
				t.Fatalf("row %d: got %+v, want %+v", i, got[i], want)
			}
		}
		var buf2 bytes.Buffer
		if err := tr2.WriteCSV(&buf2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("WriteCSV is not stable across a round trip")
		}
	})
}
