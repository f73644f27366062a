package httpserver

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// review answers the review queue's Approve and Reject buttons.
func (s *Server) review(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxReviewForm)
	if err := r.ParseForm(); err != nil {
		s.actionResult(w, http.StatusBadRequest, "bad form: "+err.Error())
		return
	}
	f := r.PostForm
	mp, posting, action := f.Get("marketplace"), f.Get("posting"), f.Get("action")
	if mp == "" || posting == "" || (action != "approve" && action != "reject") {
		s.actionResult(w, http.StatusBadRequest, "give marketplace, posting and action (approve or reject)")
		return
	}
	var amount float64
	if a := strings.TrimSpace(f.Get("amount")); a != "" {
		v, err := strconv.ParseFloat(a, 64)
		if err != nil {
			s.actionResult(w, http.StatusBadRequest, "amount "+strconv.Quote(oneLine(a))+" is not a number")
			return
		}
		amount = v
	}
	user, _, _ := r.BasicAuth()
	by := "page:" + user
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	fields := []zap.Field{zap.String("marketplace", mp), zap.String("posting", posting), zap.String("user", user)}
	if action == "approve" {
		already, err := s.opts.Actions.Approve(ctx, mp, posting, by, amount, strings.TrimSpace(f.Get("proposal")))
		done := "approved " + mp + ":" + posting + "; its bid task is enqueued"
		if already {
			done = mp + ":" + posting + " was approved already; its bid is on its way"
		}
		s.answer(w, "approve", err, done, append(fields, zap.Float64("amount", amount))...)
		return
	}
	why := strings.TrimSpace(f.Get("why"))
	if why == "" {
		why = "rejected on the status page"
	}
	already, err := s.opts.Actions.Reject(ctx, mp, posting, by, why)
	done := "rejected " + mp + ":" + posting
	if already {
		done = mp + ":" + posting + " was rejected already"
	}
	s.answer(w, "reject", err, done, fields...)
}

// retract answers a placed bid's Retract button.
func (s *Server) retract(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.actionResult(w, http.StatusBadRequest, "bad form: "+err.Error())
		return
	}
	mp, posting := r.PostForm.Get("marketplace"), r.PostForm.Get("posting")
	if mp == "" || posting == "" {
		s.actionResult(w, http.StatusBadRequest, "give marketplace and posting")
		return
	}
	user, _, _ := r.BasicAuth()
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	already, err := s.opts.Actions.Retract(ctx, mp, posting, "page:"+user, strings.TrimSpace(r.PostForm.Get("why")))
	done := "retracted the bid on " + mp + ":" + posting
	if already {
		done = "the bid on " + mp + ":" + posting + " was retracted already"
	}
	s.answer(w, "retract", err, done, zap.String("marketplace", mp), zap.String("posting", posting), zap.String("user", user))
}
