package notify

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/bidder/bidder/internal/config"
)

// FromConfig is the notifier's Config from the process config: a route per
// channel (events within notify.events), for marketplaces. client nil: a
// bounded client of DefaultTimeout.
func FromConfig(c config.Notify, marketplaces []string, client *http.Client) (Config, error) {
	if client == nil {
		client = NewHTTPClient(0)
	}
	out := Config{Marketplaces: marketplaces, SweepEvery: time.Duration(c.SweepEvery), MaxRetry: c.MaxRetry}
	for i, ch := range c.Channels {
		var channel Channel
		switch ch.Type {
		case config.ChannelWebhook:
			channel = NewWebhook(ch.Name, ch.URL, ch.Secret, client)
		case config.ChannelSlack:
			channel = NewSlack(ch.Name, ch.Secret, client)
		case config.ChannelTelegram:
			channel = NewTelegram(ch.Name, ch.URL, ch.Secret, ch.ChatID, client)
		default:
			return Config{}, fmt.Errorf("notify: notify.channels[%d]: unknown type %q", i, ch.Type)
		}
		out.Routes = append(out.Routes, Route{Channel: channel, Events: events(c.Events, ch.Events), RatePerSecond: ch.RatePerSecond})
	}
	return out, nil
}

// events is what a channel receives: its own list within the global one;
// nil for all.
func events(global, own []string) []string {
	switch {
	case len(global) == 0 && len(own) == 0:
		return nil
	case len(global) == 0:
		return slices.Clone(own)
	case len(own) == 0:
		return slices.Clone(global)
	}
	out := []string{}
	for _, e := range own {
		if slices.Contains(global, e) {
			out = append(out, e)
		}
	}
	return out
}
