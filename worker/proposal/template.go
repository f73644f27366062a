package proposal

import (
	"context"
	"time"
)

// TemplateWriter sends the rules' proposal template (Request.Template)
// unchanged: today's behaviour, the default, and what the model writer
// falls back to.
type TemplateWriter struct {
	now func() time.Time
}

// NewTemplateWriter returns a TemplateWriter.
func NewTemplateWriter() *TemplateWriter {
	return &TemplateWriter{now: time.Now}
}

// Write implements Writer.
func (w *TemplateWriter) Write(_ context.Context, req Request) (Proposal, error) {
	if err := checkRequest(req); err != nil {
		return Proposal{}, err
	}
	return Proposal{Text: req.Template, Source: SourceTemplate, CreatedAt: w.now().UTC()}, nil
}
