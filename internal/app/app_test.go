package app

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/bidder/bidder/internal/config"
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
