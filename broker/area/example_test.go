package area_test

import (
	"fmt"
	"strings"

	"github.com/censusvault/censusvault/broker/area"
)

func ExampleLoad() {
	csv := `code,parent,level,name,planned_households
VN,,nation,Việt Nam,
42,VN,province,Hà Tĩnh,
437,42,district,Thị xã Hồng Lĩnh,
18070,437,commune,Phường Bắc Hồng,
18070.001,18070,ea,Tổ dân phố 1,120
18070.002,18070,ea,Tổ dân phố 2,95
`
	tree, err := area.Load(strings.NewReader(csv))
	if err != nil {
		fmt.Println(err)
		return
	}
	commune, _ := tree.Ancestor("18070.002", area.Commune)
	a, _ := tree.Get(commune)
	fmt.Println(a.Name, a.Planned)
	fmt.Println(tree.Path("18070.002"))
	fmt.Println(tree.Contains("437", "18070.001"))
	// Output:
	// Phường Bắc Hồng 215
	// [VN 42 437 18070 18070.002]
	// true
}

func ExampleLoad_error() {
	csv := `code,parent,level,name,planned_households
VN,,nation,Việt Nam,
18070,4399,commune,Phường Bắc Hồng,
`
	_, err := area.Load(strings.NewReader(csv))
	fmt.Println(err)
	// Output:
	// areas line 3: unknown parent "4399" for area "18070"
}

func ExampleTree_Walk() {
	tree, _ := area.Load(strings.NewReader(small))
	tree.Walk("42", 2, func(a area.Area, depth int) bool {
		fmt.Printf("%s%s %s: %d households planned\n", strings.Repeat("  ", depth), a.Level, a.Name, a.Planned)
		return true
	})
	// Output:
	// province Hà Tĩnh: 323 households planned
	//   district Thị xã Hồng Lĩnh: 316 households planned
	//     commune Phường Bắc Hồng: 215 households planned
	//     commune Phường Nam Hồng: 101 households planned
	//   district Thành phố Hà Tĩnh: 7 households planned
	//     commune Phường Trần Phú: 7 households planned
}
