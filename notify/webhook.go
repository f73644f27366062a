package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/bidder/bidder/ledger"
)

// Webhook headers.
const (
	HeaderSignature      = "X-Bidder-Signature" // "sha256=" + hex HMAC-SHA256 of the body
	HeaderTimestamp      = "X-Bidder-Timestamp" // Unix seconds when this attempt was sent
	HeaderIdempotencyKey = "Idempotency-Key"    // the event ID: the same on every attempt
)

// Webhook POSTs each event as JSON, signed, with the event ID as its
// Idempotency-Key: a receiver that deduplicates by it sees each event once
// however often it is sent.
type Webhook struct {
	name, url string
	secret    []byte
	client    *http.Client
}

// NewWebhook returns a webhook channel. The URL is not treated as a secret
// in config, but it is kept out of errors all the same.
func NewWebhook(name, url, secret string, client *http.Client) *Webhook {
	if client == nil {
		client = NewHTTPClient(0)
	}
	return &Webhook{name: name, url: url, secret: []byte(secret), client: client}
}

func (w *Webhook) Name() string     { return w.name }
func (w *Webhook) Idempotent() bool { return true }

// WebhookBody is what a webhook receives: the ledger event's fields and
// the text the chat channels would show.
type WebhookBody struct {
	ledger.Event
	Text string `json:"text"`
}

// Sign is the X-Bidder-Signature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(WebhookBody{Event: m.Event, Text: m.Text})
	if err != nil {
		return &SendError{Channel: w.name, Class: ErrPermanent, Reason: "encode", Err: err}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(HeaderSignature, Sign(w.secret, body))
	h.Set(HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
	h.Set(HeaderIdempotencyKey, m.Event.ID)
	h.Set("User-Agent", "bidder-notify")
	a, err := post(ctx, w.client, w.name, w.url, h, body)
	if err != nil {
		return err
	}
	if a.status/100 != 2 {
		return statusError(w.name, a, "")
	}
	return nil
}
