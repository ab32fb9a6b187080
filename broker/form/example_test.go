package form_test

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/censusvault/censusvault/broker/form"
)

func Example() {
	body, err := os.ReadFile("testdata/household.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := form.Decode(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	reg, _ := form.NewRegistry(form.Default())
	f, ok := reg.Get(s.Form, s.FormVersion)
	if !ok {
		fmt.Println("unknown form")
		return
	}
	if err := f.ValidateAt(s, time.Date(2019, 4, 10, 0, 0, 0, 0, time.UTC)); err != nil {
		fmt.Println(err)
		return
	}
	parts, _ := f.Split(s)
	fmt.Printf("%d persons in EA %s\n", len(s.Persons), s.Area)
	fmt.Println(string(parts[form.Operational]))
	fmt.Println(s.Household["head_name"]) // values never print
	// Output:
	// 6 persons in EA 18070.001
	// {"household":{"respondent_no":2,"visit_count":1},"persons":[{"response_type":2},{"response_type":1},{"response_type":2},{"response_type":2},{"response_type":2},{"response_type":2}]}
	// form.Value(redacted)
}

func ExampleForm_Validate() {
	s, err := form.Decode([]byte(`{
		"id": "6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64",
		"form": "census2019", "form_version": 1,
		"area": "18070.001", "household_no": 38,
		"interviewed_at": "2019-04-06T10:00:00+07:00",
		"household": {"head_name": "Nguyễn Văn Độc Nhất", "colour": "blue"},
		"persons": [{"full_name": "Nguyễn Văn Độc Nhất", "relationship": 1, "sex": 3, "birth_year": "1970"}]
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	err = form.Default().Validate(s)
	fmt.Println(errors.Is(err, form.ErrInvalid))
	var e *form.Error
	if errors.As(err, &e) {
		for _, p := range e.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// true
	// household.colour: unknown field
	// persons[0].sex: code not allowed
	// persons[0].birth_year: must be a number
}
