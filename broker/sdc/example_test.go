package sdc_test

import (
	"fmt"

	"github.com/censusvault/censusvault/broker/sdc"
)

func Example() {
	p := sdc.DefaultParams()
	if err := p.CheckShape(3, 29400); err != nil {
		fmt.Println(err)
		return
	}
	pt, err := sdc.NewPTable(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Record keys come from the vault (an HMAC); here, fixed numbers.
	var cell sdc.Cell
	for i := range uint32(25) {
		cell.Add(i*2654435761, 30) // each contributor's value is at most 100
	}
	v, suppressed := pt.ReleaseCount(cell)
	fmt.Println("count within ±2 of 25:", !suppressed && v >= 23 && v <= 27)
	_, suppressed = pt.ReleaseMean(cell, 100)
	fmt.Println("mean suppressed:", suppressed)
	fmt.Println(p.CheckShape(5, 10))
	fmt.Println(p.Canonical())
	// Output:
	// count within ±2 of 25: true
	// mean suppressed: false
	// table has 5 dimensions; at most 4 dimensions
	// ckp/v1 D=2 V=1 js=10 dims=4 cells=50000 universe=100 modulus=4294967296
}
