package synth_test

import (
	"fmt"
	"strings"

	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/form"
	"github.com/censusvault/censusvault/broker/synth"
)

// A synthetic national census: the tree, then households spread over its
// EAs, each a submission any device could have sent.
func Example() {
	tree, err := area.Load(strings.NewReader(synth.NationalAreas(2019)))
	if err != nil {
		panic(err)
	}
	eas := synth.EAs(tree)
	var persons int
	err = synth.Households(2019, form.Default(), eas, 3, func(sub []byte) error {
		s, err := form.Decode(sub)
		if err != nil {
			return err
		}
		persons += len(s.Persons)
		return nil
	})
	fmt.Println(len(tree.Children("VN")), "provinces", err, persons > 0)
	// Output: 63 provinces <nil> true
}
