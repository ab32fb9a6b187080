// Package tables will hold the aggregate-table engine of the research
// broker (issue 5). For now it holds the derived variables a table may
// name besides the form's analytic fields.
package tables

import (
	"fmt"
	"time"
)

// AgeGroup5Bands is the number of five-year age bands: 0–4 … 95–99 and
// 100+.
const AgeGroup5Bands = 21

// Age is the completed years at the census moment (the form's: see
// form.Form.Census). The day of birth is not collected, so a person born
// in the census month or later in the year is taken not to have had their
// birthday yet (a census moment is taken at its month's first instant,
// as census2019's is); with the month unknown (0), mid-year is assumed.
// ok is false for a birth after the census moment or an impossible
// month.
func Age(census time.Time, birthYear, birthMonth int) (age int, ok bool) {
	if birthMonth < 0 || birthMonth > 12 {
		return 0, false
	}
	age = census.Year() - birthYear
	switch {
	case birthMonth == 0:
		age-- // born around mid-year
	case birthMonth >= int(census.Month()):
		age--
	}
	if age < 0 {
		return 0, false
	}
	return age, true
}

// AgeGroup5 is the five-year band (0 for 0–4 … 19 for 95–99, 20 for 100+)
// of a person's age at the census moment.
func AgeGroup5(census time.Time, birthYear, birthMonth int) (band int, ok bool) {
	age, ok := Age(census, birthYear, birthMonth)
	if !ok {
		return 0, false
	}
	return min(age/5, AgeGroup5Bands-1), true
}

// AgeGroup5Label names a band: "0-4", …, "95-99", "100+".
func AgeGroup5Label(band int) string {
	if band == AgeGroup5Bands-1 {
		return "100+"
	}
	return fmt.Sprintf("%d-%d", band*5, band*5+4)
}
