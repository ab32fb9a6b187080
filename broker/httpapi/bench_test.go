package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/censusvault/censusvault/broker"
	"github.com/censusvault/censusvault/broker/area"
	"github.com/censusvault/censusvault/broker/httpapi"
	"github.com/censusvault/censusvault/crypto/agekey"
	"github.com/censusvault/censusvault/policy"
	"github.com/censusvault/censusvault/storage"
	"github.com/censusvault/censusvault/storage/postgres"
	"github.com/censusvault/censusvault/storage/postgres/pgtest"
	"github.com/censusvault/censusvault/storage/sqlite"
	"github.com/google/uuid"
)

// BenchmarkHTTPDeposit measures deposits per second through the real HTTP
// server with 16 concurrent clients, on each backend. Ciphertexts are made
// before the timer starts, so the figure is the server's: TLS aside, what
// one instance takes from the field.
//
//	go test -run '^$' -bench HTTPDeposit -benchtime 4000x ./broker/httpapi
func BenchmarkHTTPDeposit(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchHTTPDeposit(b, func(b *testing.B) storage.Store {
			st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(b.TempDir(), sqlite.FileName), Create: true})
			if err != nil {
				b.Fatal(err)
			}
			return st
		})
	})
	b.Run("postgres", func(b *testing.B) {
		benchHTTPDeposit(b, func(b *testing.B) storage.Store {
			st, err := postgres.Open(context.Background(), postgres.Options{DSN: pgtest.DSN(b)})
			if err != nil {
				b.Fatal(err)
			}
			return st
		})
	})
}

const benchClients = 16

func benchHTTPDeposit(b *testing.B, open func(*testing.B) storage.Store) {
	ctx := context.Background()
	st := open(b)
	defer st.Close()
	var csv strings.Builder
	csv.WriteString("code,parent,level,name,planned_households\nVN,,nation,Việt Nam,\n42,VN,province,Hà Tĩnh,\n437,42,district,Hồng Lĩnh,\n")
	var eas []string
	for c := 0; c < 4; c++ {
		commune := fmt.Sprintf("180%02d", 70+3*c)
		fmt.Fprintf(&csv, "%s,437,commune,Phường %s,\n", commune, commune)
		for e := 1; e <= 4; e++ {
			ea := fmt.Sprintf("%s-%02d", commune, e)
			fmt.Fprintf(&csv, "%s,%s,ea,Địa bàn %02d,100000\n", ea, commune, e)
			eas = append(eas, ea)
		}
	}
	tree, err := area.Load(strings.NewReader(csv.String()))
	if err != nil {
		b.Fatal(err)
	}
	kp, err := agekey.Create(filepath.Join(b.TempDir(), agekey.FileName))
	if err != nil {
		b.Fatal(err)
	}
	if err := broker.Init(ctx, broker.InitOpts{Store: st, Keys: kp, Areas: tree, Actor: "cli:bench"}); err != nil {
		b.Fatal(err)
	}
	// The server's capacity is measured, not the per-user rate limit: 16
	// users stand for the many thousands a real census has.
	br, err := broker.New(ctx, broker.Opts{Store: st, Keys: kp, Limits: broker.Limits{UserRate: -1}})
	if err != nil {
		b.Fatal(err)
	}
	tokens := map[string]string{}
	for _, ea := range eas {
		tok, err := br.AddUser(ctx, "cli:bench", broker.NewUser{Name: broker.UserID("enum-" + ea), Role: policy.Enumerator, Area: broker.AreaCode(ea)})
		if err != nil {
			b.Fatal(err)
		}
		tokens[ea] = tok.Reveal()
	}
	h, err := httpapi.New(httpapi.Opts{Broker: br})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	rcpt, err := age.ParseHybridRecipient(br.IngestRecipient())
	if err != nil {
		b.Fatal(err)
	}

	type job struct {
		token string
		body  []byte
	}
	jobs := make([]job, b.N)
	for i := range jobs {
		ea := eas[i%len(eas)]
		jobs[i] = job{tokens[ea], benchCiphertext(b, rcpt, ea, 1+i/len(eas))}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
	next := make(chan job)
	var wg sync.WaitGroup
	var failed sync.Once
	b.ResetTimer()
	for w := 0; w < benchClients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/submissions", bytes.NewReader(j.body))
				req.Header.Set("Authorization", "Bearer "+j.token)
				resp, err := hc.Do(req)
				if err != nil {
					failed.Do(func() { b.Error(err) })
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Do(func() { b.Errorf("deposit: HTTP %d", resp.StatusCode) })
				}
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deposits/s")
}

func benchCiphertext(b *testing.B, r age.Recipient, ea string, no int) []byte {
	p := func(name string, rel, sex, year int) map[string]any {
		return map[string]any{"full_name": name, "relationship": rel, "sex": sex, "birth_year": year, "birth_month": 5,
			"ethnicity": 1, "religion": 1, "education_level": 5, "marital_status": 2}
	}
	m := map[string]any{
		"id": uuid.NewString(), "form": "census2019", "form_version": 1, "area": ea, "household_no": no,
		"interviewed_at": "2019-04-05T09:30:00+07:00",
		"household": map[string]any{"head_name": "Nguyễn Văn Hùng", "address": "Số 12, tổ dân phố 1", "phone": "0912345678",
			"dwelling_type": 2, "floor_area_m2": 65.5, "water_source": 3, "electricity": 1},
		"persons": []any{p("Nguyễn Văn Hùng", 1, 1, 1968), p("Trần Thị Lan", 2, 2, 1971), p("Nguyễn Thị Mai", 3, 2, 1995), p("Nguyễn Văn Nam", 3, 1, 2003)},
	}
	plain, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
