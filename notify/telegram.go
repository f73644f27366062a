package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTelegramURL is the Bot API's base URL.
const DefaultTelegramURL = "https://api.telegram.org"

// Telegram sends with a bot's sendMessage. The Bot API has no idempotency
// key: a send whose answer was lost may have posted, so it is not sent
// again.
type Telegram struct {
	name, endpoint, chatID string
	client                 *http.Client
}

// NewTelegram returns a Telegram channel. baseURL "" is the Bot API; the
// token is a credential and, being in the URL path, never appears in an
// error.
func NewTelegram(name, baseURL, token, chatID string, client *http.Client) *Telegram {
	if client == nil {
		client = NewHTTPClient(0)
	}
	if baseURL == "" {
		baseURL = DefaultTelegramURL
	}
	return &Telegram{name: name, endpoint: strings.TrimRight(baseURL, "/") + "/bot" + token + "/sendMessage",
		chatID: chatID, client: client}
}

func (t *Telegram) Name() string     { return t.name }
func (t *Telegram) Idempotent() bool { return false }

// telegramAnswer is the Bot API's envelope. Its description is not quoted
// in errors: it is free text from the far side.
type telegramAnswer struct {
	OK         *bool `json:"ok"`
	ErrorCode  int   `json:"error_code"`
	Parameters struct {
		RetryAfter int64 `json:"retry_after"`
	} `json:"parameters"`
}

func (t *Telegram) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(map[string]any{"chat_id": t.chatID, "text": m.Text, "disable_web_page_preview": true})
	if err != nil {
		return &SendError{Channel: t.name, Class: ErrPermanent, Reason: "encode", Err: err}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	a, err := post(ctx, t.client, t.name, t.endpoint, h, body)
	if err != nil {
		return err
	}
	var ans telegramAnswer
	jerr := json.Unmarshal(a.body, &ans)
	if a.status/100 == 2 {
		if jerr != nil || ans.OK == nil {
			// A success status with an answer that is not the Bot API's:
			// it may have sent.
			return &SendError{Channel: t.name, Class: ErrAmbiguous, Status: a.status, Reason: "unreadable answer"}
		}
		if *ans.OK {
			return nil
		}
	}
	code := a.status
	if jerr == nil && ans.ErrorCode != 0 {
		code = ans.ErrorCode
	}
	e := statusError(t.name, answer{status: code, header: a.header}, "")
	if jerr == nil && ans.ErrorCode != 0 {
		e.Reason = "error_code " + strconv.Itoa(ans.ErrorCode)
	}
	if ra := ans.Parameters.RetryAfter; ra > 0 {
		e.RetryAfter = min(time.Duration(min(ra, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	return e
}
