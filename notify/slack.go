package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Slack posts to an incoming webhook. Slack has no idempotency key: a send
// whose answer was lost may have posted, so it is not sent again.
type Slack struct {
	name, url string
	client    *http.Client
}

// NewSlack returns a Slack channel. url is the incoming webhook URL, a
// credential: it never appears in an error.
func NewSlack(name, url string, client *http.Client) *Slack {
	if client == nil {
		client = NewHTTPClient(0)
	}
	return &Slack{name: name, url: url, client: client}
}

func (s *Slack) Name() string     { return s.name }
func (s *Slack) Idempotent() bool { return false }

// slackCode is what Slack's error answers look like (invalid_payload,
// no_service, channel_is_archived): only such a word is quoted in an error,
// never an arbitrary answer.
var slackCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

func (s *Slack) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(map[string]string{"text": m.Text})
	if err != nil {
		return &SendError{Channel: s.name, Class: ErrPermanent, Reason: "encode", Err: err}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	a, err := post(ctx, s.client, s.name, s.url, h, body)
	if err != nil {
		return err
	}
	code := strings.TrimSpace(string(a.body))
	if !slackCode.MatchString(code) {
		code = ""
	}
	if a.status/100 != 2 {
		reason := ""
		if code != "" {
			reason = "HTTP " + strconv.Itoa(a.status) + " " + code
		}
		return statusError(s.name, a, reason)
	}
	return nil
}
