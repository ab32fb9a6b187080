package tables_test

import (
	"testing"
	"time"

	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/tables"
)

// census2019 is the default form's census moment, 2019-04-01 00:00 +07.
func census2019(t *testing.T) time.Time {
	m, ok := form.Default().Census()
	if !ok {
		t.Fatal("the default form has no census moment")
	}
	return m
}

func TestAge(t *testing.T) {
	for _, c := range []struct {
		year, month, age int
		ok               bool
	}{
		{2019, 1, 0, true},   // born January 2019: 0 completed years
		{2019, 3, 0, true},   // March 2019
		{2019, 4, 0, false},  // April 2019: after the census moment
		{2019, 12, 0, false}, // December 2019
		{2019, 0, 0, false},  // 2019, month unknown: taken as mid-year, unborn
		{2018, 3, 1, true},   // had the first birthday in March 2019
		{2018, 4, 0, true},   // April birthday not reached on April 1st
		{2018, 0, 0, true},   // month unknown: mid-year
		{1919, 3, 100, true},
		{1919, 4, 99, true},
		{1900, 1, 119, true},
		{1968, 13, 0, false},
		{1968, -1, 0, false},
	} {
		age, ok := tables.Age(census2019(t), c.year, c.month)
		if ok != c.ok || (ok && age != c.age) {
			t.Errorf("Age(%d, %d) = %d, %v; want %d, %v", c.year, c.month, age, ok, c.age, c.ok)
		}
	}
}

func TestAgeGroup5(t *testing.T) {
	for _, c := range []struct {
		year, month, band int
		label             string
	}{
		{2019, 3, 0, "0-4"},
		{2014, 4, 0, "0-4"},    // 4 completed years
		{2014, 3, 1, "5-9"},    // 5
		{1924, 3, 19, "95-99"}, // 95
		{1919, 4, 19, "95-99"}, // 99
		{1919, 3, 20, "100+"},  // 100
		{1900, 1, 20, "100+"},
	} {
		band, ok := tables.AgeGroup5(census2019(t), c.year, c.month)
		if !ok || band != c.band || tables.AgeGroup5Label(band) != c.label {
			t.Errorf("AgeGroup5(%d, %d) = %d (%s), %v; want %d (%s)", c.year, c.month, band, tables.AgeGroup5Label(band), ok, c.band, c.label)
		}
	}
	if _, ok := tables.AgeGroup5(census2019(t), 2019, 5); ok {
		t.Error("a birth after the census moment has a band")
	}
	seen := map[string]bool{}
	for b := 0; b < tables.AgeGroup5Bands; b++ {
		seen[tables.AgeGroup5Label(b)] = true
	}
	if len(seen) != 21 {
		t.Errorf("%d distinct band labels, want 21", len(seen))
	}
}
