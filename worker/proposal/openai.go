package proposal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/redis/go-redis/v9"
)

// MaxResponseBytes caps a chat-completions answer read from the server: a
// proposal of DefaultMaxLength characters is a few KiB of JSON, and a
// broken or hostile server must not fill the worker's memory.
const MaxResponseBytes = 1 << 20

// maxRetryAfter bounds the server's Retry-After, which is outside input.
const maxRetryAfter = time.Hour

// settleTimeout bounds the settlement, which runs even when the caller's
// context has ended: an unsettled reservation stays charged in full.
const settleTimeout = 2 * time.Second

var errResponseTooLarge = errors.New("answer larger than MaxResponseBytes")

// Option configures New and NewModelWriter.
type Option func(*options)

type options struct {
	rdb         redis.UniversalClient
	spendPrefix string
	metrics     *Metrics
	transport   http.RoundTripper
	now         func() time.Time
}

// WithRedis is the Redis of the spend cap; required when spend is set.
func WithRedis(rdb redis.UniversalClient) Option { return func(o *options) { o.rdb = rdb } }

// WithSpendPrefix sets the spend cap's key prefix (default "proposal_spend").
func WithSpendPrefix(p string) Option { return func(o *options) { o.spendPrefix = p } }

// WithMetrics counts tokens into m (bidder_proposal_tokens_total).
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithTransport sets the HTTP transport to the model server (default: a
// clone of http.DefaultTransport, HTTP/2 where the server offers it). The
// answer size limit wraps it.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithClock sets the clock of the spend windows (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New returns the writer cfg asks for: a *TemplateWriter for writer
// template (or unset), a *ModelWriter for writer openai. cfg must have
// passed Validate and ResolveAPIKey.
func New(cfg Config, opts ...Option) (Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proposal: %w", err)
	}
	if !cfg.IsModel() {
		return NewTemplateWriter(), nil
	}
	return NewModelWriter(cfg, opts...)
}

// ModelWriter writes proposals with an OpenAI-compatible chat-completions
// API. On failure it falls back to the template or returns a *WaitError
// (on_error); an answer Check rejects always falls back. Safe for
// concurrent use.
type ModelWriter struct {
	chat        openai.ChatCompletionService
	model       string
	maxTokens   int64
	param       string
	temperature *float64
	timeout     time.Duration
	wait        bool
	waitFor     time.Duration
	profile     Profile
	prompt      *prompt
	checker     *checker
	spend       *Spend // nil: no cap
	metrics     *Metrics
	now         func() time.Time
}

// NewModelWriter returns the model writer of cfg (writer openai).
func NewModelWriter(cfg Config, opts ...Option) (*ModelWriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proposal: %w", err)
	}
	if !cfg.IsModel() {
		return nil, fmt.Errorf("proposal: NewModelWriter needs writer: %s, got %q", WriterOpenAI, cfg.Writer)
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	p, err := compilePrompt(cfg)
	if err != nil { // unreachable after Validate
		return nil, fmt.Errorf("proposal: %w", err)
	}
	rt := o.transport
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	sdk := []option.RequestOption{
		option.WithBaseURL(cfg.BaseURL),
		option.WithHTTPClient(&http.Client{Transport: &limitTransport{rt: rt, max: MaxResponseBytes}}),
		// asynq retries the task; retries in here would multiply the
		// calls one reservation pays for and hide Retry-After from us.
		option.WithMaxRetries(0),
	}
	if cfg.APIKey != "" {
		sdk = append(sdk, option.WithAPIKey(cfg.APIKey))
	}
	w := &ModelWriter{
		// The chat service alone, not openai.NewClient: the client reads
		// OPENAI_* variables (base URL, organisation, custom headers), and
		// the config must be the only thing that says where proposals go.
		chat:        openai.NewChatCompletionService(sdk...),
		model:       cfg.Model,
		maxTokens:   int64(cfg.maxTokens()),
		param:       cfg.MaxTokensParam,
		temperature: cfg.Temperature,
		timeout:     cfg.timeout(),
		wait:        cfg.OnError == OnErrorWait,
		waitFor:     cfg.wait(),
		profile:     cfg.Profile,
		prompt:      p,
		checker:     newChecker(cfg),
		metrics:     o.metrics,
		now:         o.now,
	}
	if s := cfg.Spend; s.TokensPerHour > 0 || s.TokensPerDay > 0 {
		if o.rdb == nil {
			return nil, fmt.Errorf("proposal: spend cap set but no Redis (WithRedis)")
		}
		w.spend = NewSpend(o.rdb, o.spendPrefix, s.TokensPerHour, s.TokensPerDay)
	}
	return w, nil
}

// Write implements Writer: one model call, checked, or the template.
func (w *ModelWriter) Write(ctx context.Context, req Request) (Proposal, error) {
	if err := checkRequest(req); err != nil {
		return Proposal{}, err
	}
	mp := req.Posting.MarketplaceID
	msgs, err := w.prompt.build(req, w.profile)
	if err != nil {
		return w.fail(req, messages{}, ResultModelError, "prompt: "+err.Error(), 0, err)
	}
	now := w.now()
	var res Reservation
	if w.spend != nil {
		res, err = w.spend.Reserve(ctx, mp, rand.Text(), w.maxTokens+estimateTokens(msgs), now)
		var capErr *CapError
		switch {
		case errors.As(err, &capErr):
			return w.fail(req, msgs, ResultSpendCap, capErr.Error(), capErr.RetryAt.Sub(now), err)
		case err != nil:
			if ctx.Err() != nil {
				return Proposal{}, fmt.Errorf("proposal: %s:%s: %w", mp, req.Posting.ID, ctx.Err())
			}
			return w.fail(req, msgs, ResultModelError, "spend cap unavailable", w.waitFor, err)
		}
	}

	comp, callErr := w.call(ctx, msgs)
	used := w.charged(res, comp, callErr)
	if w.spend != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		// A failed settlement leaves the reservation charged in full,
		// which errs towards spending less; nothing to do about it here.
		_ = w.spend.Settle(sctx, res, used)
		cancel()
	}
	w.metrics.addTokens(mp, used)

	if callErr != nil {
		if ctx.Err() != nil {
			// The caller gave up (lock lost, shutdown): not the model's
			// failure, and nothing to fall back for.
			return Proposal{}, fmt.Errorf("proposal: %s:%s: %w", mp, req.Posting.ID, ctx.Err())
		}
		detail, after := w.describe(callErr)
		return w.fail(req, msgs, ResultModelError, detail, after, callErr)
	}
	model := comp.Model
	if model == "" {
		model = w.model
	}
	p := Proposal{Source: SourceModel, Model: model, PromptHash: msgs.Hash, Tokens: used, CreatedAt: now.UTC()}
	if len(comp.Choices) == 0 {
		return w.fail(req, msgs, ResultModelError, "answer has no choices", w.waitFor, errors.New("no choices"))
	}
	choice := comp.Choices[0]
	var rejectErr error
	switch {
	case choice.Message.Refusal != "":
		rejectErr = reject(RejectRefusal, choice.Message.Refusal)
	case choice.FinishReason == "length":
		rejectErr = reject(RejectCutOff, fmt.Sprintf("stopped at max_tokens %d", w.maxTokens))
	default:
		p.Text, rejectErr = w.checker.check(choice.Message.Content)
	}
	if rejectErr != nil {
		// Never a wait: asking again costs tokens for an answer that may
		// be refused again, and the posting may close meanwhile.
		fb := fallback(req, p, ResultRejected, rejectErr.Error())
		return fb, nil
	}
	return p, nil
}

func (w *ModelWriter) call(ctx context.Context, m messages) (*openai.ChatCompletion, error) {
	params := openai.ChatCompletionNewParams{
		Model: w.model,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(m.System),
			openai.UserMessage(m.User),
		},
	}
	if w.param == ParamMaxCompletionTokens {
		params.MaxCompletionTokens = openai.Int(w.maxTokens)
	} else {
		params.MaxTokens = openai.Int(w.maxTokens)
	}
	if w.temperature != nil {
		params.Temperature = openai.Float(*w.temperature)
	}
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	return w.chat.New(cctx, params)
}

// charged is what a call costs against the cap: the usage the server
// reported; nothing when it refused the call (4xx, 503: not processed);
// the whole reservation when it may have worked and said nothing usable
// (other 5xx, timeout, broken answer), because it may still bill for it.
func (w *ModelWriter) charged(res Reservation, comp *openai.ChatCompletion, err error) int64 {
	var apiErr *openai.Error
	switch {
	case err == nil && comp != nil && comp.Usage.TotalTokens > 0:
		return comp.Usage.TotalTokens
	case errors.As(err, &apiErr) && (apiErr.StatusCode < 500 || apiErr.StatusCode == http.StatusServiceUnavailable):
		return 0
	}
	return res.Tokens
}

// describe turns a call error into words safe for a log line, and how
// long to wait. Only structure is used: a status code, a known cause.
// Server-written text (an error body may echo the request) never is.
func (w *ModelWriter) describe(err error) (string, time.Duration) {
	var apiErr *openai.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &apiErr):
		after := w.waitFor
		if apiErr.StatusCode == http.StatusTooManyRequests || apiErr.StatusCode == http.StatusServiceUnavailable {
			if d, ok := retryAfter(apiErr.Response, w.now()); ok {
				after = d
			}
		}
		return fmt.Sprintf("HTTP %d", apiErr.StatusCode), after
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", w.timeout), w.waitFor
	case errors.Is(err, errResponseTooLarge):
		return fmt.Sprintf("answer larger than %d bytes", MaxResponseBytes), w.waitFor
	case errors.As(err, &urlErr):
		// url.Error prints the URL; the base URL holds no secret (Validate)
		// but the cause is what an operator needs.
		return "request failed: " + urlErr.Err.Error(), w.waitFor
	}
	return "malformed answer", w.waitFor
}

// retryAfter reads Retry-After-Ms or Retry-After (seconds or an HTTP date).
func retryAfter(resp *http.Response, now time.Time) (time.Duration, bool) {
	if resp == nil {
		return 0, false
	}
	var d time.Duration
	if v := resp.Header.Get("Retry-After-Ms"); v != "" {
		ms, err := strconv.ParseFloat(v, 64)
		if err != nil || !(ms >= 0) {
			return 0, false
		}
		d = time.Duration(ms * float64(time.Millisecond))
	} else if v := resp.Header.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			if s < 0 {
				return 0, false
			}
			d = time.Duration(min(s, int64(maxRetryAfter/time.Second))) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		} else {
			return 0, false
		}
	} else {
		return 0, false
	}
	return min(max(d, time.Second), maxRetryAfter), true
}

// fail is a model failure: the template, or a wait.
func (w *ModelWriter) fail(req Request, m messages, result, detail string, after time.Duration, cause error) (Proposal, error) {
	if w.wait {
		return Proposal{}, &WaitError{After: max(after, time.Second), Result: result, Err: fmt.Errorf("%s: %w", detail, causeClass(cause))}
	}
	return fallback(req, Proposal{Model: w.model, PromptHash: m.Hash, CreatedAt: w.now().UTC()}, result, detail), nil
}

// causeClass keeps errors.Is working on the wait's cause without carrying
// its text: the detail already says what is safe to say.
func causeClass(err error) error {
	for _, target := range []error{ErrSpendCap, ErrSpendUnavailable, context.DeadlineExceeded, errResponseTooLarge} {
		if errors.Is(err, target) {
			return target
		}
	}
	return errModel
}

var errModel = errors.New("model call failed")

func fallback(req Request, p Proposal, result, reason string) Proposal {
	p.Text, p.Source, p.Fallback, p.FallbackReason = req.Template, SourceTemplate, result, reason
	return p
}

// limitTransport refuses answers larger than max bytes.
type limitTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t *limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, errResponseTooLarge
	}
	resp.Body = &limitBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n > 0 {
			return 0, errResponseTooLarge
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitBody) Close() error { return b.rc.Close() }
