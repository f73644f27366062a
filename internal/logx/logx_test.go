package logx

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bidder/bidder/internal/textsafe"
)

const hostile = "\x1b[2J\x1b]0;owned\x07\r\nconfig OK \u202eevil\u2066\u009b31m\u2028\xff"

func TestNoControlCharacterReachesALine(t *testing.T) {
	cfg := zap.NewProductionEncoderConfig()
	for name, enc := range map[string]zapcore.Encoder{
		"console": zapcore.NewConsoleEncoder(cfg),
		"json":    zapcore.NewJSONEncoder(cfg),
	} {
		var out bytes.Buffer
		log := zap.New(zapcore.NewCore(Escaping(enc), zapcore.AddSync(&out), zap.DebugLevel)).Named("n" + hostile)
		log.With(zap.String("ctx", hostile)).Warn("msg "+hostile, zap.String("field", hostile), zap.Any("any", map[string]string{"k" + hostile: hostile}))
		log.Sugar().Warnf("Retry exhausted for task id=%s", hostile) // how asynq logs
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines, want 2 (a message must not start a line):\n%s", name, len(lines), out.String())
		}
		for _, l := range lines {
			if !textsafe.Clean(strings.ReplaceAll(l, "\t", "")) {
				t.Errorf("%s: line holds control characters: %q", name, l)
			}
			if !strings.Contains(l, `\u001b[2J`) || !strings.Contains(l, `\u202eevil`) {
				t.Errorf("%s: escapes not visible in %q", name, l)
			}
			if name == "json" && !json.Valid([]byte(l)) {
				t.Errorf("json: line is no longer JSON: %q", l)
			}
		}
	}
}

func TestPlainLinesUntouched(t *testing.T) {
	var a, b bytes.Buffer
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	zap.New(zapcore.NewCore(enc, zapcore.AddSync(&a), zap.InfoLevel)).Info("café ✓", zap.Int("n", 1))
	zap.New(zapcore.NewCore(Escaping(enc.Clone()), zapcore.AddSync(&b), zap.InfoLevel)).Info("café ✓", zap.Int("n", 1))
	// Times differ; everything after them must not.
	cut := func(s string) string { return s[strings.IndexByte(s, '\t'):] }
	if cut(a.String()) != cut(b.String()) {
		t.Fatalf("harmless line changed:\n%q\n%q", a.String(), b.String())
	}
}
