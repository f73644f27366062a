package httpserver

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// Guard wraps a handler with what every answer of bidder's listener needs
// against hostile browsers. Handler puts it in front of the whole mux, so a
// page added later (a review queue, a resume button) is covered without
// asking:
//
//   - Host check (DNS rebinding): a page on a name its author controls can
//     rebind that name to 127.0.0.1 and then read what a loopback listener
//     serves as if it were its own origin. The Host header still carries the
//     attacker's name, so a loopback listener answers only loopback Host
//     values (localhost, 127.0.0.0/8, ::1, any port) and the names in
//     allowed; a listener on another address answers any Host while allowed
//     is empty, else IP literals (a browser cannot rebind those) and allowed.
//     Other Host values get 421 with a one-line reason.
//   - Cross-origin protection (CSRF): http.CrossOriginProtection refuses
//     with 403 every request with a non-safe method (POST, PUT, PATCH,
//     DELETE) that a browser sent from another origin, judged by
//     Sec-Fetch-Site or else Origin against Host. Requests from tools
//     (curl, Prometheus) carry neither header and pass.
//   - No framing (clickjacking): X-Frame-Options: DENY and
//     Content-Security-Policy: frame-ancestors 'none' on every answer.
func Guard(next http.Handler, loopback bool, allowed []string) http.Handler {
	names := make([]string, 0, len(allowed))
	for _, h := range allowed {
		names = append(names, normalHost(h))
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "forbidden: cross-origin request refused (state-changing requests must come from this UI's own origin)", http.StatusForbidden)
	}))
	inner := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		if !hostAllowed(r.Host, loopback, names) {
			http.Error(w, fmt.Sprintf("misdirected request: Host %q is not served here; use localhost or 127.0.0.1, or add the name to http.allowed_hosts", r.Host), http.StatusMisdirectedRequest)
			return
		}
		inner.ServeHTTP(w, r)
	})
}

func hostAllowed(hostport string, loopback bool, allowed []string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	host := normalHost(hostport)
	if host == "localhost" || slices.Contains(allowed, host) {
		return true
	}
	ip := net.ParseIP(host)
	if loopback {
		return ip != nil && ip.IsLoopback()
	}
	return len(allowed) == 0 || ip != nil
}

// normalHost is a Host value without port, IPv6 brackets, trailing dot or
// case.
func normalHost(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}
