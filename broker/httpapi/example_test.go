package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/client"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
)

// A vault on the embedded default, served over HTTP, and a field device
// depositing one household: fetch the ingest recipient, encrypt on the
// device, post, and keep the signed receipt. Sending the same bytes again
// (a retry after a lost reply) returns the same receipt.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "censusvault-example")
	defer os.RemoveAll(dir)

	tree, _ := area.Load(strings.NewReader(testAreas))
	keys, _ := agekey.Create(filepath.Join(dir, agekey.FileName))
	store, _ := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	defer store.Close()
	if err := broker.Init(ctx, broker.InitOpts{Store: store, Keys: keys, Areas: tree, Actor: "cli:example"}); err != nil {
		fmt.Println(err)
		return
	}
	b, _ := broker.New(ctx, broker.Opts{Store: store, Keys: keys})
	token, _ := b.AddUser(ctx, "cli:example", broker.NewUser{Name: "enum-1", Role: policy.Enumerator, Area: eaA1})
	h, _ := httpapi.New(httpapi.Opts{Broker: b})
	srv := httptest.NewServer(h)
	defer srv.Close()

	device, _ := client.New(client.Opts{BaseURL: srv.URL, Token: token.Reveal()})
	recipient, _ := device.Recipient(ctx)
	submission := `{"id":"6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64","form":"census2019","form_version":1,` +
		`"area":"18070-01","household_no":1,"interviewed_at":"2019-04-05T09:30:00+07:00",` +
		`"household":{"head_name":"Nguyễn Văn Hùng"},` +
		`"persons":[{"full_name":"Nguyễn Văn Hùng","relationship":1,"sex":1,"birth_year":1968}]}`
	ciphertext, _ := client.Encrypt(recipient, []byte(submission))

	first, err := device.Deposit(ctx, ciphertext)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("created:", first.Created, "area:", first.Receipt.Area)
	again, _ := device.Deposit(ctx, ciphertext)
	fmt.Println("again created:", again.Created, "same receipt:", again.Receipt == first.Receipt)

	rep, _ := device.Progress(ctx, eaA1, 0)
	fmt.Printf("%s: %d/%d households, %.2f %%\n", rep.Rows[0].Area, rep.Rows[0].Deposited, rep.Rows[0].Planned, rep.Rows[0].Percent)

	_, err = device.OpenSubmission(ctx, "6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64")
	fmt.Println("read it back:", err)
	// Output:
	// created: true area: 18070-01
	// again created: false same receipt: true
	// 18070-01: 1/3 households, 33.33 %
	// read it back: HTTP 403: not permitted to read submission 6f1c3a52-8d4e-4b7a-9c21-0e5d7f3b8a64
}
