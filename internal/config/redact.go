package config

import (
	"net/url"
	"slices"
	"strings"
)

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
	r.Marketplaces = slices.Clone(c.Marketplaces)
	for i := range r.Marketplaces {
		r.Marketplaces[i].Token = redact(r.Marketplaces[i].Token)
		r.Marketplaces[i].Proposals.APIKey = redact(r.Marketplaces[i].Proposals.APIKey)
	}
	return r
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return RedactedSecret
}

// RedactURL hides a URL's password. A string that does not parse is
// replaced whole, since where its password sits is unknown.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable URL]"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), RedactedPassword)
		return strings.Replace(u.String(), url.QueryEscape(RedactedPassword), RedactedPassword, 1)
	}
	return u.String()
}

// Secrets lists every resolved secret, for scrubbing them out of error
// messages written by libraries that do not know what is secret.
func (c Config) Secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	add(c.Redis.Password)
	add(c.Redis.Sentinel.Password)
	if u, err := url.Parse(c.Redis.URL); err == nil {
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	add(c.HTTP.Monitoring.BasicAuth.Password)
	for _, m := range c.Marketplaces {
		add(m.Token)
		add(m.Proposals.APIKey)
	}
	return out
}

// Scrub replaces every secret in s.
func Scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, RedactedSecret)
		}
	}
	return s
}
