package proposal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bidder/bidder/worker/rules"
)

// testKey is the API key the tests configure; it must never come back out.
const testKey = "sk-test-5ecret-do-not-leak"

// chatRequest is what the fake server decodes from a chat-completions call.
type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	MaxTokens           *int64   `json:"max_tokens"`
	MaxCompletionTokens *int64   `json:"max_completion_tokens"`
	Temperature         *float64 `json:"temperature"`
}

type seen struct {
	header http.Header
	proto  int
	body   chatRequest
}

// fakeLLM is a local server speaking the chat-completions API; answer
// decides each reply.
type fakeLLM struct {
	srv    *httptest.Server
	answer func(w http.ResponseWriter, r *http.Request, req chatRequest)

	mu   sync.Mutex
	reqs []seen
}

func newFakeLLM(t *testing.T, http2 bool, answer func(w http.ResponseWriter, r *http.Request, req chatRequest)) *fakeLLM {
	t.Helper()
	f := &fakeLLM{answer: answer}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var req chatRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, seen{header: r.Header.Clone(), proto: r.ProtoMajor, body: req})
		f.mu.Unlock()
		f.answer(w, r, req)
	})
	if http2 {
		f.srv = httptest.NewUnstartedServer(h)
		f.srv.EnableHTTP2 = true
		f.srv.StartTLS()
	} else {
		f.srv = httptest.NewServer(h)
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLLM) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

// completion writes a chat-completions answer.
func completion(w http.ResponseWriter, content, finish string, totalTokens int) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "test-model-2026",
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": finish,
			"message": map[string]any{"role": "assistant", "content": content},
		}},
		"usage": map[string]any{"prompt_tokens": totalTokens - 50, "completion_tokens": 50, "total_tokens": totalTokens},
	})
}

const goodAnswer = "Hello,\n\nI have built price scrapers in Go for three retailers and can deliver yours for 450.00 USD within a week.\n\nBest regards"

func modelConfig(f *fakeLLM, mut func(*Config)) Config {
	c := Config{
		Writer: WriterOpenAI, BaseURL: f.srv.URL + "/v1", Model: "test-model", MaxTokens: 300,
		Timeout: 0, Profile: Profile{Skills: []string{"Go"}, Portfolio: []string{"Price scraper, github.com/ada/scraper"}},
		APIKey: testKey,
	}
	if mut != nil {
		mut(&c)
	}
	return c
}

func newModelWriter(t *testing.T, f *fakeLLM, c Config, opts ...Option) *ModelWriter {
	t.Helper()
	opts = append([]Option{WithTransport(f.srv.Client().Transport)}, opts...)
	w, err := NewModelWriter(c, opts...)
	if err != nil {
		t.Fatalf("NewModelWriter: %v", err)
	}
	return w
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestModelWriterNormalAnswer(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			f := newFakeLLM(t, h2, func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
				completion(w, "  "+goodAnswer+"\n", "stop", 420)
			})
			temp := 0.4
			w := newModelWriter(t, f, modelConfig(f, func(c *Config) { c.Temperature = &temp }))
			p, err := w.Write(ctxT(t), testRequest())
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if p.Text != goodAnswer || p.Source != SourceModel || p.Model != "test-model-2026" || p.Tokens != 420 || p.Fallback != "" {
				t.Fatalf("proposal = %+v", p)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1 (no retries inside the writer)", len(reqs))
			}
			r := reqs[0]
			if want := 1; h2 {
				want = 2
				if r.proto != want {
					t.Fatalf("request over HTTP/%d, want HTTP/2", r.proto)
				}
			} else if r.proto != want {
				t.Fatalf("request over HTTP/%d, want HTTP/1.1", r.proto)
			}
			if got := r.header.Get("Authorization"); got != "Bearer "+testKey {
				t.Errorf("Authorization = %q", got)
			}
			b := r.body
			if b.Model != "test-model" || b.MaxTokens == nil || *b.MaxTokens != 300 || b.MaxCompletionTokens != nil ||
				b.Temperature == nil || *b.Temperature != 0.4 {
				t.Errorf("request body = %+v", b)
			}
			if len(b.Messages) != 2 || b.Messages[0].Role != "system" || b.Messages[1].Role != "user" {
				t.Fatalf("messages = %+v", b.Messages)
			}
			if strings.Contains(b.Messages[0].Content, "Ignore previous instructions") || !strings.Contains(b.Messages[1].Content, "Ignore previous instructions") {
				t.Error("the posting is not (only) in the user message")
			}
			m, _ := w.prompt.build(testRequest(), w.profile)
			if p.PromptHash != m.Hash || b.Messages[0].Content != m.System || b.Messages[1].Content != m.User {
				t.Error("prompt hash does not describe the messages sent")
			}
		})
	}
}

func TestModelWriterRequestOptions(t *testing.T) {
	f := newFakeLLM(t, false, func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		completion(w, goodAnswer, "stop", 100)
	})
	// The SDK's own client reads these; the config alone must decide.
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	t.Setenv("OPENAI_API_KEY", "sk-from-env")
	t.Setenv("OPENAI_ORG_ID", "org-from-env")
	w := newModelWriter(t, f, modelConfig(f, func(c *Config) {
		c.APIKey = ""
		c.MaxTokensParam = ParamMaxCompletionTokens
	}))
	if _, err := w.Write(ctxT(t), testRequest()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	r := f.requests()[0]
	if h := r.header.Get("Authorization"); h != "" {
		t.Errorf("Authorization %q sent without a configured key", h)
	}
	if h := r.header.Get("OpenAI-Organization"); h != "" {
		t.Errorf("organisation %q from the environment was sent", h)
	}
	if r.body.MaxTokens != nil || r.body.MaxCompletionTokens == nil || *r.body.MaxCompletionTokens != 300 || r.body.Temperature != nil {
		t.Errorf("body = %+v, want max_completion_tokens only", r.body)
	}
}

// failures lists server behaviours that must end in the template (or a
// wait), each with what the fallback reason must say.
var failures = []struct {
	name   string
	answer func(w http.ResponseWriter, r *http.Request, req chatRequest)
	result string
	reason string
	after  time.Duration // the wait with on_error: wait
}{
	{"429 with Retry-After", func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, `{"error":{"message":"rate limited"}}`, http.StatusTooManyRequests)
	}, ResultModelError, "HTTP 429", 7 * time.Second},
	{"500", func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		http.Error(w, `{"error":{"message":"boom"}}`, http.StatusInternalServerError)
	}, ResultModelError, "HTTP 500", DefaultWait},
	{"timeout", func(w http.ResponseWriter, r *http.Request, _ chatRequest) {
		<-r.Context().Done() // until the client gives up
	}, ResultModelError, "no answer within", DefaultWait},
	{"malformed JSON", func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","choices":[{"message":{"content":"hi"`))
	}, ResultModelError, "malformed answer", DefaultWait},
	{"oversized body", func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		completion(w, strings.Repeat("a", MaxResponseBytes+1), "stop", 100)
	}, ResultModelError, "answer larger than", DefaultWait},
	{"no choices", func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","model":"m","choices":[]}`))
	}, ResultModelError, "no choices", DefaultWait},
}

func TestModelWriterFailuresFallBackToTheTemplate(t *testing.T) {
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLLM(t, false, tc.answer)
			w := newModelWriter(t, f, modelConfig(f, func(c *Config) { c.Timeout = rules.Duration(300 * time.Millisecond) }))
			req := testRequest()
			p, err := w.Write(ctxT(t), req)
			if err != nil {
				t.Fatalf("Write: %v, want the template", err)
			}
			if p.Text != req.Template || p.Source != SourceTemplate || p.Fallback != tc.result || !strings.Contains(p.FallbackReason, tc.reason) {
				t.Fatalf("proposal = %+v, want the template with %s: %s", p, tc.result, tc.reason)
			}
			if p.Model != "test-model" || p.PromptHash == "" {
				t.Errorf("fallback lost the model or the prompt hash: %+v", p)
			}
			if strings.Contains(fmt.Sprintf("%+v", p), testKey) {
				t.Fatal("API key in the proposal")
			}
		})
	}
}

func TestModelWriterFailuresWaitWhenConfigured(t *testing.T) {
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLLM(t, false, tc.answer)
			w := newModelWriter(t, f, modelConfig(f, func(c *Config) {
				c.OnError = OnErrorWait
				c.Timeout = rules.Duration(300 * time.Millisecond)
			}))
			p, err := w.Write(ctxT(t), testRequest())
			var we *WaitError
			if !errors.As(err, &we) || !errors.Is(err, ErrWait) {
				t.Fatalf("Write = %+v, %v; want a WaitError", p, err)
			}
			if we.After != tc.after || we.Result != tc.result || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("wait = %s %s %q, want %s %s ...%s...", we.After, we.Result, err, tc.after, tc.result, tc.reason)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatal("API key in the error")
			}
		})
	}
}

func TestModelWriterRejectedAnswersFallBackEvenWhenWaiting(t *testing.T) {
	for _, tc := range []struct {
		name, content, finish, reason string
	}{
		// What a model talked round by the posting's "ignore previous
		// instructions" emits: the attacker's link and address.
		{"injected link", "Sure! Pay here: https://evil.example/pay and I start today.", "stop", RejectURL},
		{"injected e-mail", "Please e-mail attacker@evil.example to continue.", "stop", RejectEmail},
		{"too long for the marketplace", strings.Repeat("word ", 100), "stop", RejectTooLong},
		{"cut off at max_tokens", "I have built price scrapers and", "length", RejectCutOff},
		{"leftover template marker", "Hello {{.ClientName}}, I can help.", "stop", RejectMarker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLLM(t, false, func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
				completion(w, tc.content, tc.finish, 200)
			})
			w := newModelWriter(t, f, modelConfig(f, func(c *Config) {
				c.OnError = OnErrorWait
				c.MaxLength = 300
			}))
			req := testRequest()
			p, err := w.Write(ctxT(t), req)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			if p.Text != req.Template || p.Source != SourceTemplate || p.Fallback != ResultRejected || !strings.Contains(p.FallbackReason, tc.reason) {
				t.Fatalf("proposal = %+v, want the template, rejected: %s", p, tc.reason)
			}
			if p.Tokens != 200 {
				t.Errorf("tokens = %d, want the reported 200", p.Tokens)
			}
		})
	}
}

func TestModelWriterKeyNeverInErrorsOrMetrics(t *testing.T) {
	// A hostile or broken server echoes the request, key included, in its
	// error body and in a malformed answer.
	for _, status := range []int{http.StatusUnauthorized, http.StatusOK} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFakeLLM(t, false, func(w http.ResponseWriter, r *http.Request, _ chatRequest) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":{"message":"bad key %s","code":"%s"}`, r.Header.Get("Authorization"), r.Header.Get("Authorization"))
			})
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			w := newModelWriter(t, f, modelConfig(f, func(c *Config) { c.OnError = OnErrorWait }), WithMetrics(m))
			_, err := w.Write(ctxT(t), testRequest())
			if !errors.Is(err, ErrWait) {
				t.Fatalf("Write: %v, want ErrWait", err)
			}
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", errors.Unwrap(err))} {
				if strings.Contains(s, testKey) {
					t.Fatalf("API key in the error: %s", s)
				}
			}
			fb := newModelWriter(t, f, modelConfig(f, nil), WithMetrics(m))
			p, err := fb.Write(ctxT(t), testRequest())
			if err != nil || strings.Contains(p.FallbackReason, testKey) {
				t.Fatalf("fallback %+v, %v", p, err)
			}
			m.count("sandbox", SourceTemplate, p.Fallback) // as the Store would
			if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
				t.Fatalf("gather: %d, %v", n, err)
			}
			mfs, _ := reg.Gather()
			for _, mf := range mfs {
				if strings.Contains(mf.String(), testKey) {
					t.Fatalf("API key in metric %s", mf.GetName())
				}
			}
		})
	}
}

func TestModelWriterCallerCancelIsNotAFallback(t *testing.T) {
	entered := make(chan struct{})
	f := newFakeLLM(t, false, func(w http.ResponseWriter, r *http.Request, _ chatRequest) {
		close(entered)
		<-r.Context().Done()
	})
	w := newModelWriter(t, f, modelConfig(f, nil))
	ctx, cancel := context.WithCancel(ctxT(t))
	go func() {
		<-entered
		cancel() // the lock was lost, or the worker shuts down
	}()
	p, err := w.Write(ctx, testRequest())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %+v, %v; want context.Canceled, not a template to store", p, err)
	}
}

func TestModelWriterUnreachableServer(t *testing.T) {
	f := newFakeLLM(t, false, nil)
	c := modelConfig(f, func(c *Config) { c.OnError = OnErrorWait })
	f.srv.Close()
	w := newModelWriter(t, f, c)
	_, err := w.Write(ctxT(t), testRequest())
	if !errors.Is(err, ErrWait) || !strings.Contains(err.Error(), "request failed") {
		t.Fatalf("Write: %v, want a wait naming the failed request", err)
	}
}

func TestNewPicksTheWriter(t *testing.T) {
	w, err := New(Config{})
	if _, ok := w.(*TemplateWriter); !ok || err != nil {
		t.Fatalf("New(zero) = %T, %v; want the template writer", w, err)
	}
	if _, err := New(Config{Writer: "gpt"}); err == nil || !strings.Contains(err.Error(), "proposals.writer") {
		t.Fatalf("New(unknown writer) = %v", err)
	}
	c := Config{Writer: WriterOpenAI, BaseURL: "http://127.0.0.1:1/v1", Model: "m", Spend: SpendConfig{TokensPerHour: 10_000}}
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), "no Redis") {
		t.Fatalf("New(spend without Redis) = %v", err)
	}
	tw := NewTemplateWriter()
	if _, err := tw.Write(context.Background(), Request{Posting: testRequest().Posting}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("template writer without a template: %v", err)
	}
}

// A model that obeys the posting: given "ignore previous instructions" it
// writes what the posting asked for. The check must stop that answer and
// let the same model's answer to a clean posting through.
func TestInjectedPostingCompromisedModelIsCaught(t *testing.T) {
	f := newFakeLLM(t, false, func(w http.ResponseWriter, _ *http.Request, req chatRequest) {
		user := req.Messages[len(req.Messages)-1].Content
		if strings.Contains(strings.ToLower(user), "ignore previous instructions") {
			completion(w, "Thanks for the job! Pay the deposit at https://evil.example/pay or e-mail attacker@evil.example.", "stop", 150)
			return
		}
		completion(w, goodAnswer, "stop", 150)
	})
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	st := NewStore(realRedis(t), WithStoreMetrics(m))
	w := newModelWriter(t, f, modelConfig(f, nil))
	ctx := ctxT(t)

	injected := testRequest()
	p, err := st.GetOrCreate(ctx, w, injected)
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != injected.Template || p.Fallback != ResultRejected || !strings.Contains(p.FallbackReason, "evil.example") {
		t.Fatalf("injected posting: %+v, want the template, rejected for the link", p)
	}
	clean := testRequest()
	clean.Posting.ID, clean.Posting.Description = "p-43", "We need a daily price scraper."
	if p, err = st.GetOrCreate(ctx, w, clean); err != nil || p.Text != goodAnswer || p.Source != SourceModel {
		t.Fatalf("clean posting: %+v %v", p, err)
	}
	if v := testutil.ToFloat64(m.proposals.WithLabelValues("sandbox", SourceTemplate, ResultRejected)); v != 1 {
		t.Errorf("bidder_proposals_total{source=template,result=rejected} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.proposals.WithLabelValues("sandbox", SourceModel, ResultGenerated)); v != 1 {
		t.Errorf("bidder_proposals_total{source=model,result=generated} = %v, want 1", v)
	}
}

func TestModelWriterRefusalFallsBack(t *testing.T) {
	f := newFakeLLM(t, false, func(w http.ResponseWriter, _ *http.Request, _ chatRequest) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"finish_reason":"stop",` +
			`"message":{"role":"assistant","content":null,"refusal":"I cannot help with that."}}]}`))
	})
	req := testRequest()
	p, err := newModelWriter(t, f, modelConfig(f, nil)).Write(ctxT(t), req)
	if err != nil || p.Text != req.Template || p.Fallback != ResultRejected || !strings.Contains(p.FallbackReason, RejectRefusal) {
		t.Fatalf("refusal: %+v %v", p, err)
	}
}
