package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
)

// Logging logs every task's end: type, ID, retry count, duration and how it
// ended. Per-posting detail (marketplace, posting, token, outcome) is logged
// by the handler itself.
func Logging(log *zap.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			id, _ := asynq.GetTaskID(ctx)
			retry, _ := asynq.GetRetryCount(ctx)
			fields := []zap.Field{
				zap.String("type", t.Type()), zap.String("task_id", id), zap.Int("retry", retry),
				zap.Duration("took", time.Since(start)), zap.String("result", taskResult(err)),
			}
			switch taskResult(err) {
			case "ok", "wait":
				log.Debug("task done", append(fields, zap.Error(err))...)
			case "archived":
				log.Warn("task archived", append(fields, zap.Error(err))...)
			default:
				log.Debug("task failed; will retry", append(fields, zap.Error(err))...)
			}
			return err
		})
	}
}

// OtherTaskType is the type label of every task whose type known refused.
const OtherTaskType = "other"

// Instrument counts tasks by type and result and times them. The type
// comes from Redis, where anything can be written, so it is a label only
// when known(type) says this process handles it; any other type counts as
// OtherTaskType and cannot add series.
func Instrument(m *Metrics, known func(taskType string) bool) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			typ := t.Type()
			if !known(typ) {
				typ = OtherTaskType
			}
			m.taskDuration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
			m.tasks.WithLabelValues(typ, taskResult(err)).Inc()
			return err
		})
	}
}

// registered reports whether mux has a handler for exactly taskType. asynq
// matches patterns by prefix, so "bid:place:junk" reaches the bid handler
// but is still not a type of ours.
func registered(mux *asynq.ServeMux) func(string) bool {
	return func(taskType string) bool {
		_, pattern := mux.Handler(asynq.NewTask(taskType, nil))
		return pattern == taskType
	}
}

// taskResult: ok, wait (retry that is not a failure), archived, retry.
func taskResult(err error) string {
	var w *waitError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, asynq.SkipRetry):
		return "archived"
	case errors.As(err, &w) && !w.counted:
		return "wait"
	case !IsFailure(err):
		return "wait"
	}
	return "retry"
}
