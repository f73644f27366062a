package config

import (
	"slices"
	"strings"
)

// Redaction is by structure, never by value: a URL's userinfo, and the
// config fields that hold resolved secrets. Replacing every occurrence of a
// secret's value would mangle any text that happens to contain it (with
// password "x", "index" reads "inde[redacted]") and, by where the marks
// fall, give the password away. Error texts from libraries are instead kept
// free of secrets where they are built (see checkRedisURL).

// Redaction markers.
const (
	RedactedPassword = "xxxxx"
	RedactedSecret   = "[redacted]"
)

// Redacted returns a copy safe to print or log: the password in the Redis
// URL becomes "xxxxx", resolved passwords and tokens "[redacted]".
func (c Config) Redacted() Config {
	r := c
	r.Redis.URL = RedactURL(c.Redis.URL)
	r.Redis.Password = redact(c.Redis.Password)
	r.Redis.Sentinel.Addrs = slices.Clone(c.Redis.Sentinel.Addrs)
	r.Redis.Sentinel.Password = redact(c.Redis.Sentinel.Password)
	r.HTTP.Monitoring.BasicAuth.Password = redact(c.HTTP.Monitoring.BasicAuth.Password)
	r.Notify.Channels = slices.Clone(c.Notify.Channels)
	for i := range r.Notify.Channels {
		r.Notify.Channels[i].Secret = redact(r.Notify.Channels[i].Secret)
	}
	r.Marketplaces = slices.Clone(c.Marketplaces)
	for i := range r.Marketplaces {
		r.Marketplaces[i].Token = redact(r.Marketplaces[i].Token)
		r.Marketplaces[i].Proposals.APIKey = redact(r.Marketplaces[i].Proposals.APIKey)
		r.Marketplaces[i].Accounts = slices.Clone(r.Marketplaces[i].Accounts)
		for j := range r.Marketplaces[i].Accounts {
			r.Marketplaces[i].Accounts[j].Token = redact(r.Marketplaces[i].Accounts[j].Token)
		}
	}
	return r
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return RedactedSecret
}

// RedactURL hides a URL's credentials without parsing it: the userinfo is
// everything between "://" and the last "@", whatever characters it holds.
// (A parser reads an unencoded '?', '#' or '/' in a password as the end of
// the host, and would print the rest as host, query or path.) A username
// is kept when it is plainly one: unreserved characters before a ':'.
func RedactURL(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(raw[start:], "@")
	if at < 0 {
		return raw
	}
	userinfo, rest := raw[start:start+at], raw[start+at:]
	user, _, hasPassword := strings.Cut(userinfo, ":")
	switch {
	case !hasPassword:
		// A parser would call it a username; it is also where people put a
		// password by mistake.
		userinfo = RedactedPassword
	case plainUsername(user):
		userinfo = user + ":" + RedactedPassword
	default:
		userinfo = RedactedPassword + ":" + RedactedPassword
	}
	return raw[:start] + userinfo + rest
}

// plainUsername reports whether s is made of RFC 3986 unreserved characters
// and percent escapes only.
func plainUsername(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~%", c) >= 0) {
			return false
		}
	}
	return true
}
