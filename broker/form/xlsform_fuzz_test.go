package form_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"unicode/utf8"

	"github.com/censusvault/censusvault/broker/form"
)

// checkDefinition is what the fuzz targets hold ReadDefinition to: it
// never panics; a workbook's error is an *XLSFormError; errors are valid
// UTF-8 and short; a form it returns is one Parse accepts, unchanged by a
// second pass.
func checkDefinition(t *testing.T, name string, b []byte) {
	got, err := form.ReadDefinition(name, b)
	if err != nil {
		var xe *form.XLSFormError
		if bytes.HasPrefix(b, []byte("PK\x03\x04")) && !errors.As(err, &xe) {
			t.Fatalf("workbook error %T: %v", err, err)
		}
		if msg := err.Error(); !utf8.ValidString(msg) || len(msg) > 2000 {
			t.Fatalf("error not valid UTF-8 or too long (%d bytes): %q", len(msg), msg)
		}
		return
	}
	def := mustJSON(t, got)
	again, err := form.Parse(def)
	if err != nil {
		t.Fatalf("returned a form that Parse refuses: %v\n%s", err, def)
	}
	if !bytes.Equal(mustJSON(t, again), def) {
		t.Fatalf("Parse changes the form:\n%s\n%s", def, mustJSON(t, again))
	}
}

// FuzzParseXLSForm reads arbitrary bytes as a definition file: workbooks
// (seeds: the labour-force workbook, census2019 as a workbook, broken
// ones) and JSON.
func FuzzParseXLSForm(f *testing.F) {
	if b, err := os.ReadFile(lfsWorkbook); err == nil {
		f.Add(b)
	}
	f.Add(bookOf(form.Default()).xlsx(f))
	broken := lfsBook()
	broken[0].rows[broken[0].index(f, "age")]["class"] = "secret"
	f.Add(broken.xlsx(f))
	if b, err := os.ReadFile("census2019.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDefinition(t, "form.xlsx", b)
	})
}

// FuzzXLSFormCells writes fuzzed text into the cells of a question, a
// choice and the settings of a valid workbook: the reader's cell syntax,
// groups and the mapping to Parse are exercised far beyond what random
// zip bytes reach.
func FuzzXLSFormCells(f *testing.F) {
	f.Add("integer", "age", "analytic", "0", "110", "yes", "${sex} = 1", ". < 100", "1", "", "1")
	f.Add("select_one sex", "sex2", "operational", "", "", "no", "", "", "2", "", "1")
	f.Add("text", "note_text", "identifying", "", "", "", "", "", "1", "100", "3")
	f.Add("begin group", "g", "", "", "", "", "${age} > 1", "", "0", "", "1")
	f.Add("end repeat", "", "", "", "", "", "", "", "9999", "", "1.0")
	f.Add("decimal", "wage", "analytic", "-1e3", "1.5E2", "true()", "", "", "x", "", "0")
	f.Fuzz(func(t *testing.T, typ, name, class, min, max, required, relevant, constraint, choice, maxLen, version string) {
		b := lfsBook()
		s := b[0]
		s.insert(s.index(t, "age")+1, map[string]string{"type": typ, "name": name, "class": class, "min": min, "max": max,
			"required": required, "relevant": relevant, "constraint": constraint, "max_len": maxLen})
		b.sheet(t, "choices").rows[0]["name"] = choice
		b.sheet(t, "settings").rows[0]["version"] = version
		x, err := b.build()
		if err != nil {
			t.Skip("excelize does not write these cells:", err)
		}
		checkDefinition(t, "form.xlsx", x)
	})
}
