package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// benchAreas is a town of 2 wards of 5 EAs each, so deposits use several
// data keys as in the field.
func benchAreas() string {
	var b strings.Builder
	b.WriteString("code,parent,level,name,planned_households\nVN,,nation,Việt Nam,\n42,VN,province,Hà Tĩnh,\n437,42,district,Hồng Lĩnh,\n")
	for _, c := range []string{"18070", "18073"} {
		fmt.Fprintf(&b, "%s,437,commune,Phường %s,\n", c, c)
		for e := 1; e <= 5; e++ {
			fmt.Fprintf(&b, "%s-%02d,%s,ea,Địa bàn %02d,120\n", c, e, c, e)
		}
	}
	return b.String()
}

// benchHousehold is a household of six, about 1.3 KiB of JSON.
func benchHousehold(i int) []byte {
	ea := fmt.Sprintf("%s-%02d", []string{"18070", "18073"}[i%2], 1+(i/2)%5)
	p := func(name string, rel, sex, year int) map[string]any {
		return map[string]any{"full_name": name, "relationship": rel, "sex": sex, "birth_year": year, "birth_month": 1 + i%12,
			"ethnicity": 1, "religion": 1, "education_level": 5, "marital_status": 2}
	}
	m := map[string]any{
		"id": uuid.NewString(), "form": "census2019", "form_version": 1, "area": ea, "household_no": 1 + i/10,
		"interviewed_at": "2019-04-05T09:30:00+07:00",
		"household": map[string]any{
			"head_name": "Nguyễn Văn Hùng", "address": "Số 12, ngõ 4, tổ dân phố 1, phường Bắc Hồng", "phone": "0912345678",
			"dwelling_type": 2, "tenure": 1, "floor_area_m2": 65.5, "water_source": 3, "electricity": 1, "toilet_type": 1,
		},
		"persons": []any{
			p("Nguyễn Văn Hùng", 1, 1, 1968), p("Trần Thị Lan", 2, 2, 1971), p("Nguyễn Thị Mai", 3, 2, 1995),
			p("Nguyễn Văn Nam", 3, 1, 2003), p("Nguyễn Minh Khôi", 6, 1, 2017), p("Lê Thị Tám", 8, 2, 1941),
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// BenchmarkDeposit measures the whole deposit path in process, without
// HTTP: age decryption (hybrid ML-KEM-768 + X25519), decoding and
// validation, authorization, sealing both field classes, and the durable
// store-plus-audit transaction (WAL, synchronous=FULL, group commit) with
// the signed receipt. Ciphertexts are made before the timer starts.
func BenchmarkDeposit(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	tree, err := area.Load(strings.NewReader(benchAreas()))
	if err != nil {
		b.Fatal(err)
	}
	kp, err := agekey.Create(filepath.Join(dir, agekey.FileName))
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(dir, sqlite.FileName), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := broker.Init(ctx, broker.InitOpts{Store: st, Keys: kp, Areas: tree, Actor: "cli:bench"}); err != nil {
		b.Fatal(err)
	}
	br, err := broker.New(ctx, broker.Opts{Store: st, Keys: kp})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close(ctx)
	tok, err := br.AddUser(ctx, "cli:bench", broker.NewUser{Name: "enum-bench", Role: policy.Enumerator, Area: "437"})
	if err != nil {
		b.Fatal(err)
	}
	caller, err := br.Authenticate(ctx, "Bearer "+tok.Reveal(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	rcpt, err := age.ParseHybridRecipient(br.IngestRecipient())
	if err != nil {
		b.Fatal(err)
	}
	cts := make([][]byte, b.N)
	for i := range cts {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rcpt)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(benchHousehold(i))
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		cts[i] = buf.Bytes()
	}

	var next atomic.Int64
	b.ReportAllocs()
	// Many devices at once, as in the field: group commit shares fsyncs.
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ct := cts[next.Add(1)-1]
			res, err := br.Deposit(ctx, caller, int64(len(ct)), bytes.NewReader(ct))
			if err != nil {
				b.Error(err)
				return
			}
			if !res.Created {
				b.Error("deposit not created")
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deposits/s")
}
