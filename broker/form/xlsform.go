package form

// XLSForm: the spreadsheet form format of ODK, KoboToolbox and SurveyCTO,
// read into a Form. An .xlsx file is a zip of XML parts; excelize reads it
// (it is imported by this file only). Everything the definition must
// satisfy is checked by Parse: this reader turns cells into a Form, marshals
// it to JSON and parses that, so a workbook and the equivalent JSON file
// are held to the same rules. What it checks itself is what only the
// workbook knows: sheets, headers, cell syntax, groups and repeats, and
// where each problem is (sheet, row, column).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"

	"github.com/censusvault/censusvault/broker/untrusted"
)

// Limits on a workbook. A workbook comes from an administrator, but a
// wrong or hostile file must still cost little: its size, its unzipped
// size (a zip bomb stops at the limit), its rows and its columns are
// bounded before anything is built from them.
const (
	MaxXLSFormBytes   = 10 << 20 // bytes of an .xlsx file
	maxXLSFormUnzip   = 16 << 20 // bytes of all its parts, unzipped
	maxSurveyRows     = 2000     // survey rows with content, below the header
	maxChoiceRows     = 20000    // choices rows with content, below the header
	maxCheckRows      = 200      // checks rows with content, below the header
	maxSettingsRows   = 1        // settings: one row of values
	maxXLSFormColumns = 256      // columns A…IV; a cell further right is refused
	maxGroupDepth     = 16       // nested begin group / begin repeat
	defaultTextMaxLen = 255      // max_len of a text question without one
	maxQuoted         = 40       // bytes of a cell quoted in an error
)

// XLSFormError is a problem of a workbook, located at a sheet, a row and,
// when one cell is at fault, a column. Error reads
//
//	survey row 14, column D (class): unknown class "secret" (want identifying, analytic or operational)
type XLSFormError struct {
	Sheet  string // survey, choices, settings or checks; "" for the whole workbook
	Row    int    // 1-based spreadsheet row; 0 for the whole sheet
	Column string // column letters ("D"); "" when no one cell is at fault
	Header string // the column's header as written ("class")
	Msg    string
	Err    error // the definition check (Parse) that refused, if any
}

func (e *XLSFormError) Error() string {
	var b strings.Builder
	b.WriteString(e.Sheet)
	if e.Row > 0 {
		fmt.Fprintf(&b, " row %d", e.Row)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %s (%s)", e.Column, untrusted.Clip(e.Header, maxQuoted))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *XLSFormError) Unwrap() error { return e.Err }

// libError is the text of an excelize error, which may quote bytes of the
// file: valid UTF-8, clipped.
func libError(err error) string {
	return untrusted.Clip(strings.ToValidUTF8(err.Error(), "\uFFFD"), 120)
}

// quote quotes a cell in an error, clipped.
func quote(s string) string { return strconv.Quote(untrusted.Clip(s, maxQuoted)) }

var (
	zipMagic = []byte("PK\x03\x04")
	oleMagic = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}
)

// ReadDefinition reads a form definition file: an XLSForm workbook (.xlsx,
// recognised by its zip header) or JSON (anything else). name is the
// file's name, used only to recognise a misnamed file and in messages.
// It is the one entry of `censusvault form add FILE`.
func ReadDefinition(name string, b []byte) (*Form, error) {
	switch {
	case bytes.HasPrefix(b, zipMagic):
		return ParseXLSForm(b)
	case bytes.HasPrefix(b, oleMagic):
		return nil, fmt.Errorf("%s is an Excel 97-2003 (.xls) or password-protected workbook: save it as an .xlsx workbook without a password", quote(filepath.Base(name)))
	case strings.EqualFold(filepath.Ext(name), ".xlsx"):
		return nil, fmt.Errorf("%s is not an .xlsx workbook (no zip header)", quote(filepath.Base(name)))
	}
	return Parse(b)
}

// ParseXLSForm reads an XLSForm workbook: sheets survey, choices (when a
// question has a list), settings, and optionally checks. The README
// section "Writing a form" lists the columns. Questions inside the one
// begin repeat … end repeat are the person fields; all others are
// household fields. Groups only flatten: a group's relevant is joined to
// each of its questions' with "and". note, calculate and the metadata
// types (start, end, today, deviceid, username, audit …) carry no answer
// the vault seals and are skipped. The resulting form is checked by Parse;
// its errors are located at the row of the field they name.
//
// Every error is an *XLSFormError naming the sheet, the row and, when one
// cell is at fault, the column.
func ParseXLSForm(b []byte) (*Form, error) {
	if len(b) > MaxXLSFormBytes {
		return nil, &XLSFormError{Msg: fmt.Sprintf("workbook larger than %d bytes", MaxXLSFormBytes)}
	}
	wb, err := readWorkbook(b)
	if err != nil {
		return nil, err
	}
	return wb.form()
}

// sheet is one worksheet as read: the header row and the rows with content.
type sheet struct {
	name    string // the canonical name (survey), not as written
	cols    []column
	byBase  map[string][]int // base header → indexes into cols, left to right
	rows    []sheetRow
	present bool
}

type column struct {
	idx    int    // 0-based
	letter string // "D"
	header string // as written
	base   string // lowercased, aliases resolved: "label"
	lang   string // after "::", as written: "English (en)"
}

type sheetRow struct {
	n     int // 1-based spreadsheet row
	cells []string
}

type workbook struct {
	survey, choices, settings, checks *sheet
}

// readWorkbook opens the zip and reads the four sheets. It is the only
// code that calls excelize; a panic in the library on a malformed file is
// turned into an error here rather than bringing down the caller.
func readWorkbook(b []byte) (wb *workbook, err error) {
	defer func() {
		if r := recover(); r != nil {
			wb, err = nil, &XLSFormError{Msg: "the workbook could not be read (malformed .xlsx)"}
		}
	}()
	if !bytes.HasPrefix(b, zipMagic) {
		return nil, &XLSFormError{Msg: "not an .xlsx workbook (no zip header)"}
	}
	f, err := excelize.OpenReader(bytes.NewReader(b), excelize.Options{
		// Equal limits: no part is ever unzipped to a temporary file, and
		// all parts together stop at maxXLSFormUnzip bytes.
		UnzipSizeLimit:    maxXLSFormUnzip,
		UnzipXMLSizeLimit: maxXLSFormUnzip,
	})
	if err != nil {
		return nil, &XLSFormError{Msg: "not a readable .xlsx workbook: " + libError(err)}
	}
	defer f.Close()
	names := f.GetSheetList()
	find := func(want string, limit int) (*sheet, error) {
		for _, n := range names {
			if strings.EqualFold(strings.TrimSpace(n), want) {
				return readSheet(f, n, want, limit)
			}
		}
		return &sheet{name: want}, nil
	}
	wb = &workbook{}
	if wb.survey, err = find("survey", maxSurveyRows); err != nil {
		return nil, err
	}
	if wb.choices, err = find("choices", maxChoiceRows); err != nil {
		return nil, err
	}
	if wb.settings, err = find("settings", maxSettingsRows); err != nil {
		return nil, err
	}
	if wb.checks, err = find("checks", maxCheckRows); err != nil {
		return nil, err
	}
	return wb, nil
}

// readSheet reads the rows of one sheet with their numbers, cells trimmed,
// raw values (a number as stored, not as formatted). Rows past the limit
// are refused as soon as one has content, a cell right of column IV at
// once: a cell far right would make every row a long slice. A sheet with
// no cell at all has no columns (an empty choices or checks sheet is as
// good as none).
func readSheet(f *excelize.File, actual, name string, limit int) (*sheet, error) {
	rows, err := f.Rows(actual)
	if err != nil {
		return nil, &XLSFormError{Sheet: name, Msg: "sheet could not be read: " + libError(err)}
	}
	defer rows.Close()
	s := &sheet{name: name, present: true, byBase: map[string][]int{}}
	for n := 1; rows.Next(); n++ {
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			return nil, &XLSFormError{Sheet: name, Row: n, Msg: "row could not be read: " + libError(err)}
		}
		if len(cells) > maxXLSFormColumns {
			return nil, &XLSFormError{Sheet: name, Row: n, Msg: fmt.Sprintf("a cell right of column %s: at most %d columns are read", colLetter(maxXLSFormColumns-1), maxXLSFormColumns)}
		}
		empty := true
		for i, c := range cells {
			c = strings.TrimSpace(strings.ToValidUTF8(c, "\uFFFD"))
			cells[i] = c
			if c != "" {
				empty = false
			}
		}
		if n == 1 && !empty {
			if err := s.header(cells); err != nil {
				return nil, err
			}
			continue
		}
		if empty {
			continue
		}
		if len(s.cols) == 0 {
			return nil, &XLSFormError{Sheet: name, Row: 1, Msg: "row 1 is blank: it names the columns (type, name, label …)"}
		}
		if len(s.rows) == limit {
			return nil, &XLSFormError{Sheet: name, Row: n, Msg: fmt.Sprintf("too many rows: the %s sheet takes at most %d below the header", name, limit)}
		}
		s.rows = append(s.rows, sheetRow{n: n, cells: cells})
	}
	if err := rows.Error(); err != nil {
		return nil, &XLSFormError{Sheet: name, Msg: "sheet could not be read: " + libError(err)}
	}
	if len(s.cols) == 0 && (name == "choices" || name == "checks") {
		s.present = false // an empty optional sheet is no sheet
	}
	return s, nil
}

// headerAliases are other spellings of the headers this reader uses, as
// pyxform accepts them.
var headerAliases = map[string]string{
	"list name":          "list_name",
	"constraint message": "constraint_message",
	"jr:constraintmsg":   "constraint_message",
	"form id":            "form_id",
	"form title":         "form_title",
	"default language":   "default_language",
	"expr":               "expression",
	"census moment":      "census_moment",
	"max len":            "max_len",
	"head code":          "head_code",
}

func (s *sheet) header(cells []string) error {
	seen := map[string]column{}
	for i, h := range cells {
		if h == "" {
			continue
		}
		base, lang, _ := strings.Cut(h, "::")
		base = strings.Join(strings.Fields(strings.ToLower(base)), " ")
		if a, ok := headerAliases[base]; ok {
			base = a
		}
		lang = strings.TrimSpace(lang)
		c := column{idx: i, letter: colLetter(i), header: h, base: base, lang: lang}
		key := base + "::" + strings.ToLower(lang)
		if prev, dup := seen[key]; dup {
			return &XLSFormError{Sheet: s.name, Row: 1, Column: c.letter, Header: h, Msg: fmt.Sprintf("column %s has the same header", prev.letter)}
		}
		seen[key] = c
		s.byBase[base] = append(s.byBase[base], len(s.cols))
		s.cols = append(s.cols, c)
	}
	return nil
}

// colLetter is the spreadsheet name of the 0-based column i: 0 → A.
func colLetter(i int) string {
	name, err := excelize.ColumnNumberToName(i + 1)
	if err != nil {
		return "?"
	}
	return name
}

// col returns the column without a language whose base header is base.
func (s *sheet) col(base string) (column, bool) {
	for _, i := range s.byBase[base] {
		if s.cols[i].lang == "" {
			return s.cols[i], true
		}
	}
	return column{}, false
}

// need returns the column base or an error naming the header row.
func (s *sheet) need(base, why string) (column, error) {
	c, ok := s.col(base)
	if !ok {
		return c, &XLSFormError{Sheet: s.name, Row: 1, Msg: fmt.Sprintf("no column %q: %s", base, why)}
	}
	return c, nil
}

func (r sheetRow) get(c column) string {
	if c.header == "" || c.idx >= len(r.cells) {
		return ""
	}
	return r.cells[c.idx]
}

// at builds the error of one cell.
func (s *sheet) at(r sheetRow, c column, format string, args ...any) *XLSFormError {
	e := &XLSFormError{Sheet: s.name, Row: r.n, Msg: fmt.Sprintf(format, args...)}
	if c.header != "" {
		e.Column, e.Header = c.letter, c.header
	}
	return e
}

// isEnglish reports whether a label language is English: "English (en)",
// "English", "en" or anything "(en)".
func isEnglish(lang string) bool {
	l := strings.ToLower(lang)
	return l == "en" || strings.HasPrefix(l, "english") || strings.HasSuffix(l, "(en)")
}

// langOrder returns the columns of a translatable header (label,
// constraint_message) in the order they are tried: the settings'
// default_language, then English, then the column without a language,
// then the others left to right. A row takes the first non-empty one.
func (s *sheet) langOrder(base, defaultLang string) []column {
	idx := s.byBase[base]
	rank := func(c column) int {
		switch {
		case defaultLang != "" && strings.EqualFold(c.lang, defaultLang):
			return 0
		case c.lang != "" && isEnglish(c.lang):
			return 1
		case c.lang == "":
			return 2
		}
		return 3
	}
	out := make([]column, 0, len(idx))
	for r := 0; r <= 3; r++ {
		for _, i := range idx {
			if rank(s.cols[i]) == r {
				out = append(out, s.cols[i])
			}
		}
	}
	return out
}

func firstText(r sheetRow, cols []column) (string, column) {
	for _, c := range cols {
		if v := r.get(c); v != "" {
			return v, c
		}
	}
	return "", column{}
}

// clipLabel cuts a label to what Parse takes (maxLabel bytes): a label is
// shown, never checked, and question texts are often long.
func clipLabel(s string) string {
	if len(s) <= maxLabel {
		return s
	}
	return untrusted.Clip(s, maxLabel-len("…"))
}

// Cell syntax.
var (
	wholeRe   = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,15})$`)
	numberRe  = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)
	codeRe    = regexp.MustCompile(`^(0|[1-9][0-9]{0,3})$`)
	yesValues = map[string]bool{"yes": true, "true": true, "true()": true, "1": true}
	noValues  = map[string]bool{"": true, "no": true, "false": true, "false()": true, "0": true}
)

// yesNo reads a yes/no cell.
func (s *sheet) yesNo(r sheetRow, c column, what string) (bool, error) {
	v := strings.ToLower(r.get(c))
	switch {
	case yesValues[v]:
		return true, nil
	case noValues[v]:
		return false, nil
	}
	hint := ""
	if what == "required" {
		hint = "; a required-if expression is not supported: put the condition in relevant"
	}
	return false, s.at(r, c, "%s is %s: want yes or no (blank is no)%s", what, quote(r.get(c)), hint)
}

// whole reads a whole-number cell; blank is ok=false.
func (s *sheet) whole(r sheetRow, c column, what string) (n int64, ok bool, err error) {
	v := r.get(c)
	if v == "" {
		return 0, false, nil
	}
	if strings.HasSuffix(v, ".0") { // a number cell some writers store as 12.0
		v = strings.TrimSuffix(v, ".0")
	}
	if !wholeRe.MatchString(v) {
		return 0, false, s.at(r, c, "%s %s is not a whole number", what, quote(r.get(c)))
	}
	n, err = strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, s.at(r, c, "%s %s is not a whole number", what, quote(r.get(c)))
	}
	return n, true, nil
}

// number reads a finite decimal number cell; blank is nil.
func (s *sheet) number(r sheetRow, c column, what string) (*float64, error) {
	v := r.get(c)
	if v == "" {
		return nil, nil
	}
	x, err := strconv.ParseFloat(v, 64)
	if !numberRe.MatchString(v) || err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return nil, s.at(r, c, "%s %s is not a number", what, quote(v))
	}
	return &x, nil
}

// settings are the values of the settings sheet.
type settings struct {
	lang string
}

// The kinds of survey row.
const (
	rowSkip = iota
	rowQuestion
	rowBeginGroup
	rowEndGroup
	rowBeginRepeat
	rowEndRepeat
)

// skippedTypes carry no answer the vault seals: notes, calculations and
// the metadata a device fills in by itself.
var skippedTypes = map[string]bool{
	"note": true, "calculate": true, "hidden": true,
	"start": true, "end": true, "today": true, "deviceid": true, "subscriberid": true,
	"simserial": true, "phonenumber": true, "username": true, "email": true,
	"audit": true, "start-geopoint": true, "background-audio": true,
	"xml-external": true, "csv-external": true,
}

// questionTypes maps XLSForm question types to field types (select
// types separately).
var questionTypes = map[string]string{
	"integer": TypeInt, "int": TypeInt,
	"decimal": TypeDecimal,
	"text":    TypeString, "string": TypeString,
	"date": TypeDate,
}

const supportedTypes = "integer, decimal, text, date, select_one LIST, select_multiple LIST, begin/end group, begin/end repeat; skipped: note, calculate, start, end, today, deviceid, username, audit and the other metadata"

// rowType reads a type cell: its kind, the field type of a question and
// the list name of a select.
func (s *sheet) rowType(r sheetRow, c column) (kind int, typ, list string, err error) {
	words := strings.Fields(r.get(c))
	if len(words) == 0 {
		return rowSkip, "", "", nil
	}
	kw, rest := strings.ToLower(words[0]), words[1:]
	switch kw {
	case "begin", "end", "select":
		if len(rest) > 0 {
			kw, rest = kw+"_"+strings.ToLower(rest[0]), rest[1:]
		}
	}
	bad := func(format string, args ...any) (int, string, string, error) {
		return 0, "", "", s.at(r, c, format, args...)
	}
	switch kw {
	case "select_one", "select_multiple":
		if len(rest) == 0 {
			return bad("%s needs a list name (%s yes_no)", kw, kw)
		}
		if len(rest) > 1 {
			if strings.EqualFold(rest[1], "or_other") {
				return bad("%s … or_other is not supported: add an \"other\" choice to the list", kw)
			}
			return bad("type %s: want %s LIST", quote(r.get(c)), kw)
		}
		typ = TypeCode
		if kw == "select_multiple" {
			typ = TypeCodeSet
		}
		return rowQuestion, typ, rest[0], nil
	}
	if len(rest) > 0 {
		return bad("type %s: unknown type (want %s)", quote(r.get(c)), supportedTypes)
	}
	switch kw {
	case "begin_group":
		return rowBeginGroup, "", "", nil
	case "end_group":
		return rowEndGroup, "", "", nil
	case "begin_repeat":
		return rowBeginRepeat, "", "", nil
	case "end_repeat":
		return rowEndRepeat, "", "", nil
	}
	if t, ok := questionTypes[kw]; ok {
		return rowQuestion, t, "", nil
	}
	if skippedTypes[kw] {
		return rowSkip, "", "", nil
	}
	if strings.HasPrefix(kw, "select_") {
		return bad("type %s is not supported (want select_one LIST or select_multiple LIST)", quote(r.get(c)))
	}
	return bad("unknown type %s (want %s)", quote(r.get(c)), supportedTypes)
}

// frame is an open begin group or begin repeat.
type frame struct {
	repeat   bool
	row      sheetRow
	relevant string
}

// place is where a definition item came from, to locate Parse's errors.
type place struct {
	sheet *sheet
	row   sheetRow
	// exprs maps the member an expression error of Parse names
	// ("constraint: at character 3 …") to the column that holds it.
	exprs map[string]string
	// joined lists the rows whose relevant a field's was joined from
	// (its groups' and its own), when there are several.
	joined []int
}

func (wb *workbook) form() (*Form, error) {
	f := &Form{}
	set, err := wb.readSettings(f)
	if err != nil {
		return nil, err
	}
	lists, err := wb.readChoices(set)
	if err != nil {
		return nil, err
	}
	fields := map[string]place{} // field name → its row
	if err := wb.readSurvey(f, set, lists, fields); err != nil {
		return nil, err
	}
	checks := map[string]place{}
	if err := wb.readChecks(f, set, checks); err != nil {
		return nil, err
	}
	def, err := json.Marshal(f)
	if err != nil { // cannot happen: only strings, ints and finite floats
		return nil, &XLSFormError{Msg: "form could not be encoded: " + err.Error()}
	}
	parsed, err := Parse(def)
	if err != nil {
		return nil, wb.locate(err, f, fields, checks)
	}
	return parsed, nil
}

func (wb *workbook) readSettings(f *Form) (settings, error) {
	s := wb.settings
	var set settings
	if !s.present {
		return set, &XLSFormError{Sheet: "settings", Msg: "no settings sheet: the vault needs form_id and version (and takes form_title, census_moment, default_language)"}
	}
	idc, err := s.need("form_id", "the form's name, a-z 0-9 _ starting with a letter")
	if err != nil {
		return set, err
	}
	vc, err := s.need("version", "the form's version, a whole number from 1")
	if err != nil {
		return set, err
	}
	if len(s.rows) == 0 {
		return set, &XLSFormError{Sheet: "settings", Row: 2, Msg: "no values: row 2 holds form_id, version …"}
	}
	r := s.rows[0]
	if r.n != 2 {
		return set, &XLSFormError{Sheet: "settings", Row: r.n, Msg: "the values belong in row 2, right under the header"}
	}
	f.Name = r.get(idc)
	if f.Name == "" {
		return set, s.at(r, idc, "form_id is blank")
	}
	v, ok, err := s.whole(r, vc, "version")
	if err != nil {
		return set, err
	}
	if !ok {
		return set, s.at(r, vc, "version is blank")
	}
	if v < 1 || v > maxVersion {
		return set, s.at(r, vc, "version %d is outside 1…%d", v, maxVersion)
	}
	f.Version = int(v)
	if c, ok := s.col("form_title"); ok {
		f.Title = clipLabel(r.get(c))
	}
	if c, ok := s.col("census_moment"); ok {
		f.CensusMoment = r.get(c)
	}
	if c, ok := s.col("default_language"); ok {
		set.lang = r.get(c)
	}
	return set, nil
}

// choiceList is one list of the choices sheet.
type choiceList struct {
	codes []Code
}

func (wb *workbook) readChoices(set settings) (map[string]*choiceList, error) {
	s := wb.choices
	lists := map[string]*choiceList{}
	if !s.present {
		return lists, nil // a form without select questions needs none
	}
	lc, err := s.need("list_name", "the list each choice belongs to")
	if err != nil {
		return nil, err
	}
	nc, err := s.need("name", "the choice's code, a whole number 0…9999")
	if err != nil {
		return nil, err
	}
	labels := s.langOrder("label", set.lang)
	if len(labels) == 0 {
		return nil, &XLSFormError{Sheet: s.name, Row: 1, Msg: `no column "label" (or label::LANGUAGE): every choice needs a label`}
	}
	seen := map[string]map[int]int{} // list → code → row
	for _, r := range s.rows {
		list, name := r.get(lc), r.get(nc)
		if list == "" && name == "" {
			continue // a comment in another column
		}
		if list == "" {
			return nil, s.at(r, lc, "list_name is blank")
		}
		if !codeRe.MatchString(name) {
			if name == "" {
				return nil, s.at(r, nc, "choice name is blank (want a whole number 0…%d)", MaxCodeValue)
			}
			return nil, s.at(r, nc, "choice name %s of list %s is not a whole number 0…%d: the vault stores answers as codes, so name the choices 1, 2, 3 … and keep the words in the label", quote(name), quote(list), MaxCodeValue)
		}
		code, _ := strconv.Atoi(name)
		if seen[list] == nil {
			seen[list] = map[int]int{}
		}
		if first, dup := seen[list][code]; dup {
			return nil, s.at(r, nc, "choice %d of list %s is already at row %d", code, quote(list), first)
		}
		seen[list][code] = r.n
		label, _ := firstText(r, labels)
		if label == "" {
			return nil, s.at(r, labels[0], "choice %d of list %s has no label", code, quote(list))
		}
		l := lists[list]
		if l == nil {
			l = &choiceList{}
			lists[list] = l
		}
		l.codes = append(l.codes, Code{Code: code, Label: clipLabel(label)})
	}
	return lists, nil
}

// surveyCols are the survey sheet's columns this reader uses.
type surveyCols struct {
	typ, name, required, relevant, constraint, class       column
	min, max, quantitative, maxLen, role, headCode, format column
	labels, messages                                       []column
}

func (wb *workbook) readSurvey(f *Form, set settings, lists map[string]*choiceList, fields map[string]place) error {
	s := wb.survey
	if !s.present {
		return &XLSFormError{Sheet: "survey", Msg: "no survey sheet: it lists the questions"}
	}
	var c surveyCols
	var err error
	if c.typ, err = s.need("type", "each row's type (integer, text, select_one LIST, begin repeat …)"); err != nil {
		return err
	}
	if c.name, err = s.need("name", "each question's name"); err != nil {
		return err
	}
	if c.class, err = s.need("class", "a vault column: identifying, analytic or operational for every question"); err != nil {
		return err
	}
	c.required, _ = s.col("required")
	c.relevant, _ = s.col("relevant")
	c.constraint, _ = s.col("constraint")
	c.min, _ = s.col("min")
	c.max, _ = s.col("max")
	c.quantitative, _ = s.col("quantitative")
	c.maxLen, _ = s.col("max_len")
	c.role, _ = s.col("role")
	c.headCode, _ = s.col("head_code")
	c.format, _ = s.col("format")
	c.labels = s.langOrder("label", set.lang)
	c.messages = s.langOrder("constraint_message", set.lang)

	var stack []frame
	var repeat *sheetRow // the begin repeat row, once seen
	for _, r := range s.rows {
		kind, typ, list, err := s.rowType(r, c.typ)
		if err != nil {
			return err
		}
		switch kind {
		case rowSkip:
			if r.get(c.typ) == "" && r.get(c.name) != "" {
				return s.at(r, c.typ, "type is blank for the row named %s", quote(r.get(c.name)))
			}
			continue
		case rowBeginGroup, rowBeginRepeat:
			if len(stack) == maxGroupDepth {
				return s.at(r, c.typ, "groups nested more than %d deep", maxGroupDepth)
			}
			if kind == rowBeginRepeat {
				if repeat != nil {
					for _, fr := range stack {
						if fr.repeat {
							return s.at(r, c.typ, "a repeat inside the repeat of row %d: the vault has one repeat, the person roster, not nested", fr.row.n)
						}
					}
					return s.at(r, c.typ, "a second repeat (the first is at row %d): the vault has one repeat, the person roster; put household questions outside it", repeat.n)
				}
				rr := r
				repeat = &rr
			}
			stack = append(stack, frame{repeat: kind == rowBeginRepeat, row: r, relevant: r.get(c.relevant)})
			continue
		case rowEndGroup, rowEndRepeat:
			want := "end group"
			if kind == rowEndRepeat {
				want = "end repeat"
			}
			if len(stack) == 0 {
				return s.at(r, c.typ, "%s without a begin", want)
			}
			top := stack[len(stack)-1]
			if top.repeat != (kind == rowEndRepeat) {
				opened := "group"
				if top.repeat {
					opened = "repeat"
				}
				return s.at(r, c.typ, "%s closes the %s begun at row %d (want end %s)", want, opened, top.row.n, opened)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		fd, err := wb.question(r, c, typ, list, lists)
		if err != nil {
			return err
		}
		var rel []string
		var relRows []int
		inRepeat := false
		for _, fr := range stack {
			inRepeat = inRepeat || fr.repeat
			if fr.relevant != "" {
				rel, relRows = append(rel, fr.relevant), append(relRows, fr.row.n)
			}
		}
		if fd.Relevant != "" {
			rel, relRows = append(rel, fd.Relevant), append(relRows, r.n)
		}
		p := place{sheet: s, row: r, exprs: map[string]string{"constraint": "constraint"}}
		switch {
		case len(rel) == 1 && relRows[0] == r.n:
			p.exprs["relevant"] = "relevant" // its own, not joined to a group's
		case len(rel) > 0:
			p.joined = relRows
		}
		fd.Relevant = conjunction(rel)
		if prev, dup := fields[fd.Name]; dup {
			return s.at(r, c.name, "name %s is already used at row %d: names are unique in the whole form", quote(fd.Name), prev.row.n)
		}
		fields[fd.Name] = p
		if inRepeat {
			f.Person = append(f.Person, fd)
		} else {
			f.Household = append(f.Household, fd)
		}
	}
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		what := "group"
		if top.repeat {
			what = "repeat"
		}
		return s.at(top.row, c.typ, "begin %s is never closed (add an end %s row)", what, what)
	}
	if repeat == nil {
		return &XLSFormError{Sheet: "survey", Msg: "no begin repeat: the vault needs the person roster as one repeat group (begin repeat … end repeat around the person questions)"}
	}
	return nil
}

// conjunction joins relevant expressions with "and", each in parentheses
// when there are several.
func conjunction(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return "(" + strings.Join(parts, ") and (") + ")"
}

// question reads one question row into a Field.
func (wb *workbook) question(r sheetRow, c surveyCols, typ, list string, lists map[string]*choiceList) (Field, error) {
	s := wb.survey
	fd := Field{Type: typ, Name: r.get(c.name)}
	if fd.Name == "" {
		return fd, s.at(r, c.name, "a question needs a name")
	}
	switch cl := r.get(c.class); {
	case cl == "":
		return fd, s.at(r, c.class, "class is blank: every question needs one (identifying, analytic or operational)")
	case !Class(strings.ToLower(cl)).valid():
		return fd, s.at(r, c.class, "unknown class %s (want identifying, analytic or operational)", quote(cl))
	default:
		fd.Class = Class(strings.ToLower(cl))
	}
	var err error
	if fd.Required, err = s.yesNo(r, c.required, "required"); err != nil {
		return fd, err
	}
	if fd.Quantitative, err = s.yesNo(r, c.quantitative, "quantitative"); err != nil {
		return fd, err
	}
	fd.Relevant = r.get(c.relevant)
	fd.Constraint = r.get(c.constraint)
	fd.ConstraintMessage, _ = firstText(r, c.messages)
	fd.Role = r.get(c.role)
	label, _ := firstText(r, c.labels)
	fd.Label = clipLabel(label)

	numeric := typ == TypeInt || typ == TypeDecimal
	for _, b := range []struct {
		col column
		dst **float64
		w   string
	}{{c.min, &fd.Min, "min"}, {c.max, &fd.Max, "max"}} {
		v, err := s.number(r, b.col, b.w)
		if err != nil {
			return fd, err
		}
		switch {
		case numeric && v == nil:
			return fd, s.at(r, b.col, "%s is required for an %s question (the vault bounds every number)", b.w, xlsType(typ))
		case !numeric && v != nil:
			return fd, s.at(r, b.col, "%s is only for integer and decimal questions", b.w)
		}
		*b.dst = v
	}

	format := strings.ToLower(r.get(c.format))
	switch {
	case format == "phone" && typ == TypeString:
		fd.Type = TypePhone
	case format != "":
		return fd, s.at(r, c.format, "format %s: the only format is phone, on a text question", quote(r.get(c.format)))
	}
	n, ok, err := s.whole(r, c.maxLen, "max_len")
	switch {
	case err != nil:
		return fd, err
	case ok && fd.Type != TypeString:
		return fd, s.at(r, c.maxLen, "max_len is only for text questions (not phone)")
	case ok && (n < 1 || n > MaxStringLen):
		return fd, s.at(r, c.maxLen, "max_len %d is outside 1…%d", n, MaxStringLen)
	case ok:
		fd.MaxLen = int(n)
	case fd.Type == TypeString:
		fd.MaxLen = defaultTextMaxLen
	}
	n, ok, err = s.whole(r, c.headCode, "head_code")
	switch {
	case err != nil:
		return fd, err
	case ok && (n < 0 || n > MaxCodeValue):
		return fd, s.at(r, c.headCode, "head_code %d is outside 0…%d", n, MaxCodeValue)
	case ok:
		hc := int(n)
		fd.HeadCode = &hc
	}

	if list != "" {
		l := lists[list]
		if l == nil {
			if !wb.choices.present {
				return fd, s.at(r, c.typ, "unknown list %s: the workbook has no choices sheet", quote(list))
			}
			return fd, s.at(r, c.typ, "unknown list %s: no choices row has this list_name", quote(list))
		}
		fd.Codes = append([]Code(nil), l.codes...)
	}
	return fd, nil
}

// xlsType names a field type as XLSForm does, for messages.
func xlsType(typ string) string {
	switch typ {
	case TypeInt:
		return "integer"
	case TypeDecimal:
		return "decimal"
	}
	return typ
}

func (wb *workbook) readChecks(f *Form, set settings, checks map[string]place) error {
	s := wb.checks
	if !s.present {
		return nil
	}
	idc, err := s.need("id", "each check's id")
	if err != nil {
		return err
	}
	sc, err := s.need("scope", "household or person")
	if err != nil {
		return err
	}
	ec, err := s.need("expression", "the rule, an XLSForm expression")
	if err != nil {
		return err
	}
	messages := s.langOrder("message", set.lang)
	for _, r := range s.rows {
		ck := Check{ID: r.get(idc), Scope: strings.ToLower(r.get(sc)), Expr: r.get(ec)}
		ck.Message, _ = firstText(r, messages)
		if ck.ID == "" {
			return s.at(r, idc, "a check needs an id")
		}
		if prev, dup := checks[ck.ID]; dup {
			return s.at(r, idc, "check id %s is already used at row %d", quote(ck.ID), prev.row.n)
		}
		checks[ck.ID] = place{sheet: s, row: r, exprs: map[string]string{"expr": "expression"}}
		f.Checks = append(f.Checks, ck)
	}
	return nil
}

// locate turns an error of Parse into an *XLSFormError at the row of the
// field or check it names (Parse quotes names with %q), and at the cell
// of the expression it names when that cell holds all of it (a relevant
// joined to a group's does not); a form-wide error about the name,
// version or census moment points at the settings cell.
func (wb *workbook) locate(err error, f *Form, fields, checks map[string]place) error {
	msg := err.Error()
	best, bestEnd, bestAt := -1, 0, place{}
	try := func(needle string, p place) {
		if i := strings.Index(msg, needle); i >= 0 && (best < 0 || i < best) {
			best, bestEnd, bestAt = i, i+len(needle), p
		}
	}
	for _, list := range [][]Field{f.Household, f.Person} {
		for _, fd := range list {
			try("field "+strconv.Quote(untrusted.Clip(fd.Name, maxNameLen)), fields[fd.Name])
		}
	}
	for _, ck := range f.Checks {
		try("check "+strconv.Quote(untrusted.Clip(ck.ID, maxNameLen)), checks[ck.ID])
	}
	if best >= 0 {
		e := &XLSFormError{Sheet: bestAt.sheet.name, Row: bestAt.row.n, Msg: msg, Err: err}
		rest := strings.TrimLeft(msg[bestEnd:], ": ")
		for member, base := range bestAt.exprs {
			if c, ok := bestAt.sheet.col(base); ok && strings.HasPrefix(rest, member+":") {
				e.Column, e.Header = c.letter, c.header
			}
		}
		if len(bestAt.joined) > 0 && strings.HasPrefix(rest, "relevant:") {
			if len(bestAt.joined) == 1 {
				e.Msg += fmt.Sprintf(" (this relevant is its group's, at row %d)", bestAt.joined[0])
			} else {
				rows := make([]string, len(bestAt.joined))
				for i, n := range bestAt.joined {
					rows[i] = strconv.Itoa(n)
				}
				e.Msg += fmt.Sprintf(" (this relevant joins those of rows %s with and, groups first; characters count in the joined text)", strings.Join(rows, ", "))
			}
		}
		return e
	}
	s := wb.settings
	for _, k := range []string{"census_moment", "version", "form_id"} {
		needle := k
		if k == "form_id" {
			needle = "form: name"
		}
		if c, ok := s.col(k); ok && len(s.rows) > 0 && strings.Contains(msg, needle) {
			e := s.at(s.rows[0], c, "%s", msg)
			e.Err = err
			return e
		}
	}
	return &XLSFormError{Msg: msg, Err: err}
}
