package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/bidder/bidder/notify"
)

// NotifyReport is what the harness's webhook received (Config.Notify).
type NotifyReport struct {
	Requests     int `json:"requests"`
	Events       int `json:"events"`        // distinct Idempotency-Keys
	Repeats      int `json:"repeats"`       // a key again: allowed, the receiver deduplicates
	BadSignature int `json:"bad_signature"` // must be 0
	Expected     int `json:"expected"`      // bid_placed per placed posting, review_needed per reviewed one
	Missing      int `json:"missing"`       // expected, never received: must be 0
	// WaitSeconds: from the end of the drain until the last expected
	// event arrived (the sweep interval, retries after worker kills).
	WaitSeconds float64  `json:"wait_s"`
	Examples    []string `json:"missing_examples,omitempty"`

	// The Slack channel: at most once, so a repeat is a failure; a message
	// lost to a kill between its attempt marker and the send is counted.
	SlackMessages int `json:"slack_messages"`
	SlackRepeats  int `json:"slack_repeats"` // must be 0
	SlackMissing  int `json:"slack_missing"`
}

func (r *NotifyReport) String() string {
	return fmt.Sprintf("webhook: %d requests, %d events (%d repeated keys), %d bad signatures; expected %d, missing %d, all in %.1fs after the drain; "+
		"slack: %d messages, %d repeated, %d missing",
		r.Requests, r.Events, r.Repeats, r.BadSignature, r.Expected, r.Missing, r.WaitSeconds,
		r.SlackMessages, r.SlackRepeats, r.SlackMissing)
}

// webhookSink is the receiver of the run's webhook channel: it checks each
// request's signature and counts each Idempotency-Key, as a receiver that
// deduplicates would.
type webhookSink struct {
	secret string
	srv    *http.Server
	url    string

	slackURL string

	mu    sync.Mutex
	keys  map[string]int
	reqs  int
	bad   int
	slack map[string]int // Slack messages by the event they name
}

// slackPath is the chaos Slack channel's webhook path; its URL is the
// channel's credential, so it reaches the workers in a file.
const slackPath = "/services/chaos/slack"

// slackEvent reads the event a Slack message names ("bid placed on
// sandbox p-000123: ..."), as "<event>:<marketplace>:<posting>".
var slackEvent = regexp.MustCompile(`^(bid placed|review needed) on (\S+) ([^\s:]+)`)

// startWebhookSink serves the run's webhook and Slack channels and writes
// their credentials (the webhook's secret, Slack's URL) to files in
// logDir, whose paths it returns.
func startWebhookSink(logDir string) (s *webhookSink, secretFile, slackFile string, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, "", "", err
	}
	s = &webhookSink{secret: hex.EncodeToString(b), keys: map[string]int{}, slack: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", "", err
	}
	s.url = "http://" + ln.Addr().String() + "/hook"
	s.slackURL = "http://" + ln.Addr().String() + slackPath
	secretFile, slackFile = filepath.Join(logDir, "webhook.secret"), filepath.Join(logDir, "slack.url")
	if err := os.WriteFile(secretFile, []byte(s.secret), 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(slackFile, []byte(s.slackURL), 0o600); err != nil {
		return nil, "", "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", s.serve)
	mux.HandleFunc("POST "+slackPath, s.serveSlack)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, secretFile, slackFile, nil
}

// serveSlack answers as Slack's incoming webhook does ("ok"), counting
// each message by the event it names, after the same hold as the webhook.
func (s *webhookSink) serveSlack(w http.ResponseWriter, r *http.Request) {
	var m struct{ Text string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&m); err != nil || m.Text == "" {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	key := m.Text
	if g := slackEvent.FindStringSubmatch(m.Text); g != nil {
		key = map[string]string{"bid placed": "bid_placed", "review needed": "review_needed"}[g[1]] + ":" + g[2] + ":" + g[3]
	}
	s.mu.Lock()
	s.slack[key]++
	s.mu.Unlock()
	select {
	case <-time.After(sinkHold):
	case <-r.Context().Done():
	}
	_, _ = io.WriteString(w, "ok")
}

func (s *webhookSink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.reqs++
	if r.Header.Get(notify.HeaderSignature) != notify.Sign([]byte(s.secret), body) {
		s.bad++
		s.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	s.keys[r.Header.Get(notify.HeaderIdempotencyKey)]++
	s.mu.Unlock()
	// Received, not yet answered: a worker killed now has sent the event
	// without marking it sent, the window a notifier crash falls into.
	// Held open for a while, so that the run's worker kills land in it.
	select {
	case <-time.After(sinkHold):
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusNoContent)
}

// sinkHold is how long the sink holds each answer back.
const sinkHold = 150 * time.Millisecond

func (s *webhookSink) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// waitNotifications runs after the last drain, while the workers (and
// their sweepers) still run: every placed posting's bid_placed and every
// reviewed posting's review_needed must reach the webhook within a bound,
// through the worker kills and Redis restarts of the fault phase.
func (h *Harness) waitNotifications(ctx context.Context, rep *Report, posts map[string][]Posting, within time.Duration) {
	start := time.Now()
	want := map[string]bool{}
	for _, m := range h.markets {
		recs, err := ledgerRecords(ctx, h.rdb, m.id, posts[m.id])
		if err != nil {
			rep.fail("ledger read: %v", err)
			return
		}
		for i, r := range recs {
			id := posts[m.id][i].ID
			if r.State == "placed" {
				want["bid_placed:"+m.id+":"+id] = true
			}
			if r.Reviewed {
				want["review_needed:"+m.id+":"+id] = true
			}
		}
	}
	n := &NotifyReport{Expected: len(want)}
	rep.Notify = n
	var missing []string
	// The webhook must get every event; Slack may lose a few to kills
	// (at most once), so once the webhook is complete it gets a grace.
	var hookDone time.Time
	for {
		missing = missing[:0]
		slackMissing := 0
		h.sink.mu.Lock()
		for k := range want {
			if h.sink.keys[k] == 0 {
				missing = append(missing, k)
			}
			if h.sink.slack[k] == 0 {
				slackMissing++
			}
		}
		h.sink.mu.Unlock()
		if len(missing) == 0 && hookDone.IsZero() {
			hookDone = time.Now()
			n.WaitSeconds = time.Since(start).Seconds()
		}
		if (!hookDone.IsZero() && (slackMissing == 0 || time.Since(hookDone) > 15*time.Second)) || time.Since(start) > within || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if hookDone.IsZero() {
		n.WaitSeconds = time.Since(start).Seconds()
	}
	h.sink.mu.Lock()
	n.Requests, n.BadSignature, n.Events = h.sink.reqs, h.sink.bad, len(h.sink.keys)
	for _, c := range h.sink.keys {
		n.Repeats += c - 1
	}
	for k, c := range h.sink.slack {
		n.SlackMessages += c
		if c > 1 {
			n.SlackRepeats += c - 1
			rep.fail("slack got %q %d times: at most once is the promise", k, c)
		}
	}
	for k := range want {
		if h.sink.slack[k] == 0 {
			n.SlackMissing++
		}
	}
	h.sink.mu.Unlock()
	n.Missing = len(missing)
	sort.Strings(missing)
	n.Examples = missing[:min(5, len(missing))]
	if n.Missing > 0 {
		rep.fail("%d of %d expected notifications never reached the webhook within %s (e.g. %v)", n.Missing, n.Expected, within, n.Examples)
	}
	if n.BadSignature > 0 {
		rep.fail("%d webhook requests with a bad signature", n.BadSignature)
	}
}

// notifyYAML is the notify section of the workers' config: a webhook and
// a Slack channel, both the harness's sink, swept every 500ms.
func (c *Config) notifyYAML() string {
	if c.notifyURL == "" {
		return ""
	}
	return fmt.Sprintf(`notify:
  enabled: true
  sweep_every: 500ms
  channels:
    - name: chaos
      type: webhook
      url: %s
      secret_file: %s
      rate_per_second: 1000
    - name: chaos-slack
      type: slack
      url_file: %s
      events: [bid_placed, review_needed]
      rate_per_second: 1000
`, c.notifyURL, c.notifySecretFile, c.notifySlackFile)
}
