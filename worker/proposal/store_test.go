package proposal

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bidder/bidder/internal/redistest"
	"github.com/bidder/bidder/lock"
)

// fixedWriter returns text, counting calls; if gate is set, every call
// waits on it first.
type fixedWriter struct {
	text    string
	calls   atomic.Int32
	entered chan struct{}
	gate    chan struct{}
	err     error
}

func (w *fixedWriter) Write(ctx context.Context, req Request) (Proposal, error) {
	w.calls.Add(1)
	if w.entered != nil {
		w.entered <- struct{}{}
	}
	if w.gate != nil {
		<-w.gate
	}
	if w.err != nil {
		return Proposal{}, w.err
	}
	return Proposal{Text: w.text, Source: SourceModel, Model: "m", PromptHash: "sha256:x", CreatedAt: time.Now().UTC()}, nil
}

func TestStoreGetOrCreateWritesOnce(t *testing.T) {
	rdb := realRedis(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	st := NewStore(rdb, WithStoreMetrics(m), WithRetention(48*time.Hour))
	ctx := ctxT(t)
	// Byte for byte: trailing spaces, non-ASCII, a CR survive the store.
	w := &fixedWriter{text: "Grüße,  \r\nich liefere das für 450,00 €. 🚀 "}
	req := testRequest()
	first, err := st.GetOrCreate(ctx, w, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.GetOrCreate(ctx, &fixedWriter{text: "another text"}, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Text != w.text || again.Text != w.text || again.PromptHash != "sha256:x" || again.Model != "m" {
		t.Fatalf("first %q, again %q; want %q both times", first.Text, again.Text, w.text)
	}
	if w.calls.Load() != 1 {
		t.Fatalf("writer called %d times", w.calls.Load())
	}
	if ttl := rdb.PTTL(ctx, st.Key("sandbox", "p-42")).Val(); ttl <= 47*time.Hour || ttl > 48*time.Hour {
		t.Errorf("TTL %s, want the 48h retention", ttl)
	}
	got, ok, err := st.Get(ctx, "sandbox", "p-42")
	if err != nil || !ok || got.Text != w.text {
		t.Fatalf("Get = %+v %v %v", got, ok, err)
	}
	if v := testutil.ToFloat64(m.proposals.WithLabelValues("sandbox", SourceModel, ResultGenerated)); v != 1 {
		t.Errorf("generated = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.proposals.WithLabelValues("sandbox", SourceModel, ResultReused)); v != 1 {
		t.Errorf("reused = %v, want 1", v)
	}
}

// Two workers write a proposal for one posting at the same time (both
// past the read, both with a text): one text wins and both send it.
func TestStoreRacingGetOrCreateAgreeOnOneText(t *testing.T) {
	rdb := realRedis(t)
	for _, model := range []bool{true, false} {
		name := map[bool]string{true: "model", false: "template"}[model]
		t.Run(name, func(t *testing.T) {
			st := NewStore(rdb, WithStorePrefix("race_"+name))
			ctx := ctxT(t)
			reqs := []Request{testRequest(), testRequest()}
			reqs[0].Template, reqs[1].Template = "template A", "template B"
			writers := []Writer{NewTemplateWriter(), NewTemplateWriter()}
			release := func() {}
			if model {
				entered, gate := make(chan struct{}, 2), make(chan struct{})
				writers = []Writer{
					&fixedWriter{text: "text A", entered: entered, gate: gate},
					&fixedWriter{text: "text B", entered: entered, gate: gate},
				}
				// Both have read "absent" and written before either stores.
				release = func() { <-entered; <-entered; close(gate) }
			}
			var wg sync.WaitGroup
			out := make([]Proposal, 2)
			errs := make([]error, 2)
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out[i], errs[i] = st.GetOrCreate(ctx, writers[i], reqs[i])
				}()
			}
			release()
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if out[0].Text != out[1].Text {
				t.Fatalf("racers got %q and %q", out[0].Text, out[1].Text)
			}
			stored, _, _ := st.Get(ctx, "sandbox", "p-42")
			if stored.Text != out[0].Text {
				t.Fatalf("stored %q, returned %q", stored.Text, out[0].Text)
			}
		})
	}
}

func TestStoreDoesNotStoreAWait(t *testing.T) {
	rdb := realRedis(t)
	st := NewStore(rdb)
	ctx := ctxT(t)
	w := &fixedWriter{err: &WaitError{After: time.Minute, Result: ResultModelError, Err: errModel}}
	if _, err := st.GetOrCreate(ctx, w, testRequest()); !errors.Is(err, ErrWait) {
		t.Fatalf("GetOrCreate: %v, want ErrWait", err)
	}
	if _, ok, err := st.Get(ctx, "sandbox", "p-42"); ok || err != nil {
		t.Fatalf("a wait was stored: %v %v", ok, err)
	}
	// The next attempt writes.
	p, err := st.GetOrCreate(ctx, &fixedWriter{text: "now"}, testRequest())
	if err != nil || p.Text != "now" {
		t.Fatalf("after the wait: %+v %v", p, err)
	}
}

func TestStoreKeysShareThePostingsSlot(t *testing.T) {
	on := NewStore(nil, WithHashTags(true))
	want := "proposal:" + (lock.Keys{HashTags: true}).Tag("sandbox", "p-42")
	if got := on.Key("sandbox", "p-42"); got != want || want != "proposal:{sandbox:p-42}" {
		t.Fatalf("key %q, want %q", got, want)
	}
	if got := NewStore(nil).Key("sandbox", "p-42"); got != "proposal:sandbox:p-42" {
		t.Fatalf("key without hash tags %q", got)
	}
}

func TestStoreCorruptRecordAndRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := NewStore(rdb)
	ctx := ctxT(t)
	for _, v := range []string{"not json", `{"text":"","source":"model"}`, `{"text":"x","source":"elsewhere"}`} {
		rdb.Set(ctx, st.Key("sandbox", "p-42"), v, 0)
		if _, err := st.GetOrCreate(ctx, &fixedWriter{text: "x"}, testRequest()); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("stored %q: %v, want ErrCorrupt", v, err)
		}
	}
	// The template path skips the read and meets the record in the claim.
	if _, err := st.GetOrCreate(ctx, NewTemplateWriter(), testRequest()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("template path: %v, want ErrCorrupt", err)
	}
	srv.Stop()
	if _, err := st.GetOrCreate(ctx, &fixedWriter{text: "x"}, testRequest()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Redis down: %v", err)
	}
	if _, err := st.GetOrCreate(ctx, NewTemplateWriter(), testRequest()); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Redis down, template: %v", err)
	}
}

// End to end: a model proposal is written once; a retry (another Writer
// instance, say another worker) sends the same text without a call.
func TestStoreWithModelWriterRetrySendsTheSameText(t *testing.T) {
	rdb := realRedis(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	var n atomic.Int32
	f := newFakeLLM(t, false, func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		if n.Add(1) == 1 {
			completion(w, "Sure: https://evil.example/pay", "stop", 100) // rejected: the template is stored
			return
		}
		completion(w, goodAnswer, "stop", 100)
	})
	st := NewStore(rdb, WithHashTags(true), WithStoreMetrics(m))
	ctx := ctxT(t)
	req := testRequest()
	first, err := st.GetOrCreate(ctx, newModelWriter(t, f, modelConfig(f, nil)), req)
	if err != nil || first.Source != SourceTemplate || first.Fallback != ResultRejected {
		t.Fatalf("first: %+v %v", first, err)
	}
	retry, err := st.GetOrCreate(ctx, newModelWriter(t, f, modelConfig(f, nil)), req)
	if err != nil || retry.Text != first.Text || retry.Source != SourceTemplate {
		t.Fatalf("retry: %+v %v; want the stored template", retry, err)
	}
	if len(f.requests()) != 1 {
		t.Fatalf("%d model calls, want 1", len(f.requests()))
	}
	if v := testutil.ToFloat64(m.proposals.WithLabelValues("sandbox", SourceTemplate, ResultRejected)); v != 1 {
		t.Errorf("rejected fallbacks = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.proposals.WithLabelValues("sandbox", SourceTemplate, ResultReused)); v != 1 {
		t.Errorf("reused = %v, want 1", v)
	}
}
