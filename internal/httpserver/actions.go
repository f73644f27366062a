package httpserver

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Where the status page's buttons post.
const (
	ActionsPath = "/actions/resume"
	ReviewPath  = "/actions/review"  // approve or reject a posting in review
	RetractPath = "/actions/retract" // withdraw a placed bid
)

// Actions are the status page's state-changing buttons. nil in Options
// keeps the page read-only; set, every request to them needs the basic
// auth credentials, and Guard refuses them from another site's page.
type Actions interface {
	// Resume brings one parked posting back.
	Resume(ctx context.Context, marketplaceID, postingID string) error
	// ResumeReason brings back every parked posting of a marketplace that
	// was parked for reason, and says how many.
	ResumeReason(ctx context.Context, marketplaceID, reason string) (int, error)
	// Approve sends a posting in review's bid, with amount and proposal
	// instead of the proposed ones when given (0, ""); already: it was
	// approved before (one outcome, however many clicks).
	Approve(ctx context.Context, marketplaceID, postingID, by string, amount float64, proposal string) (already bool, err error)
	// Reject ends a posting in review for good.
	Reject(ctx context.Context, marketplaceID, postingID, by, why string) (already bool, err error)
	// Retract withdraws a placed bid on the marketplace and records it.
	Retract(ctx context.Context, marketplaceID, postingID, by, why string) (already bool, err error)
}

// ErrRefused marks an action that does not apply (a marketplace this
// process does not know, a posting that is not parked): answered 409 with
// the reason, where other errors are a 500.
var ErrRefused = errors.New("refused")

// maxForm bounds a resume form: three short fields.
const maxForm = 4 << 10

// maxReviewForm bounds a review form: an edited proposal may be long.
const maxReviewForm = 64 << 10

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.actionResult(w, http.StatusBadRequest, "bad form: "+err.Error())
		return
	}
	mp, posting, reason := r.PostForm.Get("marketplace"), r.PostForm.Get("posting"), r.PostForm.Get("reason")
	if mp == "" || (posting == "") == (reason == "") {
		s.actionResult(w, http.StatusBadRequest, "give marketplace, and posting or reason (not both)")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	var n int
	var err error
	if posting != "" {
		if err = s.opts.Actions.Resume(ctx, mp, posting); err == nil {
			n = 1
		}
	} else {
		n, err = s.opts.Actions.ResumeReason(ctx, mp, reason)
	}
	user, _, _ := r.BasicAuth()
	what := "posting " + posting
	if reason != "" {
		what = "postings parked for " + reason
	}
	s.answer(w, "resume", err, "resumed "+strconv.Itoa(n)+" of "+mp+"'s "+what,
		zap.String("marketplace", mp), zap.String("posting", posting), zap.String("reason", reason), zap.Int("resumed", n), zap.String("user", user))
}

// answer logs an action's outcome and shows it: refusals 409, failures
// 500, success 200 with done.
func (s *Server) answer(w http.ResponseWriter, what string, err error, done string, fields ...zap.Field) {
	switch {
	case errors.Is(err, ErrRefused):
		s.opts.Logger.Info("status page: "+what+" refused", append(fields, zap.Error(err))...)
		s.actionResult(w, http.StatusConflict, "not done: "+oneLine(err.Error()))
	case err != nil:
		s.opts.Logger.Warn("status page: "+what+" failed", append(fields, zap.Error(err))...)
		s.actionResult(w, http.StatusInternalServerError, what+" failed: "+oneLine(err.Error()))
	default:
		s.opts.Logger.Info("status page: "+what, fields...)
		s.actionResult(w, http.StatusOK, done)
	}
}

func (s *Server) actionResult(w http.ResponseWriter, code int, msg string) {
	pageHeaders(w)
	w.WriteHeader(code)
	if err := resultPage.Execute(w, struct {
		OK  bool
		Msg string
	}{code == http.StatusOK, msg}); err != nil {
		s.opts.Logger.Warn("action result page", zapErr(err))
	}
}

var resultPage = template.Must(template.New("result").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bidder</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}.ok{color:#070}.bad{color:#b00}</style></head><body>
<p id="result" class="{{if .OK}}ok{{else}}bad{{end}}">{{.Msg}}</p>
<p><a href="/">Back to the status page</a></p>
</body></html>
`))
