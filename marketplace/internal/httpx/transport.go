package httpx

import (
	"net"
	"net/http"
	"time"
)

// idleConnsPerHost covers ~64 concurrent workers plus the scanner with room
// to spare, so steady load never has to redial.
const idleConnsPerHost = 128

// NewHTTPClient returns the client an adapter uses when its Config brings
// none: dial and TLS handshake bounded by min(timeout, 5s), the answer's
// header by timeout, and redirects never followed.
func NewHTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * idleConnsPerHost,
		MaxIdleConnsPerHost:   idleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 5*time.Second),
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport: tr,
		// A redirect is an answer to classify, not something to follow: a
		// followed POST could be sent twice, and a redirect to another host
		// would carry the token header there.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
