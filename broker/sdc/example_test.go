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
	mean, suppressed := pt.ReleaseMean(cell, 100)
	fmt.Println("mean suppressed:", suppressed)
	// v2: the sum moves by 12.5% to 25% of the largest contribution (30),
	// so the mean by 3.75 to 7.5 over the perturbed count.
	sum, _ := pt.ReleaseSum(cell, 100)
	fmt.Println("sum noise within [3.75, 7.5):", abs(sum-750) >= 3.75 && abs(sum-750) < 7.5, mean == sum/float64(v))
	// One contribution of 10,000 among 25 of 30 dominates the sum: the
	// other 24 add up to less than 10% of it.
	cell.Add(0x5bd1e995, 10000)
	_, suppressed = pt.ReleaseSum(cell, 20000)
	fmt.Println("dominated sum suppressed:", suppressed)
	fmt.Println(p.CheckShape(5, 10))
	fmt.Println(p.Canonical())
	// Output:
	// count within ±2 of 25: true
	// mean suppressed: false
	// sum noise within [3.75, 7.5): true true
	// dominated sum suppressed: true
	// table has 5 dimensions; at most 4 dimensions
	// ckp/v2 D=2 V=1 js=10 dims=4 cells=50000 universe=100 m=0.25 p=10 modulus=4294967296
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
