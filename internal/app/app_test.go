package app

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/config"
	"github.com/bidder/bidder/internal/textsafe"
)

// TestAdapterErrorsPrintedWhole: redaction by value blanked every letter
// equal to a one-letter token out of the adapter's message. Adapters never
// quote their token, so the message is printed as is.
func TestAdapterErrorsPrintedWhole(t *testing.T) {
	cfg := config.Defaults()
	cfg.Marketplaces = []config.Marketplace{{ID: "mp", Adapter: "sandbox", BaseURL: "http://h/?q=1", Token: "e"}}
	a, err := New(context.Background(), cfg, zap.NewNop(), "test")
	if err == nil {
		a.Close()
		t.Fatal("adapter with a query in its base URL accepted")
	}
	want := `config: marketplaces[0]: marketplace "mp": adapter "sandbox": sandbox adapter: invalid config: marketplace "mp": base URL must not carry user info, query or fragment`
	if err.Error() != want {
		t.Fatalf("error\n %s\nwant\n %s", err, want)
	}
}

// TestLoggerEscapesControlCharacters: error texts from marketplaces and task
// IDs from Redis reach log messages and fields; in a terminal their escape
// sequences would clear the screen or forge a line ("config OK").
func TestLoggerEscapesControlCharacters(t *testing.T) {
	const hostile = "\x1b[2J\x1b]0;owned\x07\r\nconfig OK \u202eevil\u009b31m"
	for _, format := range []string{"console", "json"} {
		var out bytes.Buffer
		log, err := NewLogger(config.Log{Level: "info", Format: format}, &out)
		if err != nil {
			t.Fatal(err)
		}
		log.Warn("scan failed: "+hostile, zap.String("error", hostile))
		line := strings.TrimSuffix(out.String(), "\n")
		if !textsafe.Clean(strings.ReplaceAll(line, "\t", "")) {
			t.Errorf("%s: %q", format, line)
		}
	}
}
