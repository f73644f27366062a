// Package httpx is the HTTP plumbing the marketplace adapters share: a tuned
// client, GETs whose every failure is transient, a bid POST that is sent at
// most once, and answers read under a size cap. What a marketplace's answers
// mean (status tables, error bodies, decoding) stays in each adapter; this
// package only fetches (status, header, body) and classifies the failures
// that happen before there is a complete answer to decode.
//
// # A bid POST is sent at most once
//
// net/http silently resends a request when a reused keep-alive connection
// turns out to be dead, provided it can rewind the body (Request.GetBody is
// set, which http.NewRequest does for a bytes.Reader) and it considers the
// request replayable, which includes any request carrying an Idempotency-Key
// header. Against a marketplace that takes no idempotency key, or ignores
// it, a resent bid is a second bid. PostBid therefore clears GetBody: the
// body cannot be rewound, so net/http never resends, and a connection that
// dies after the request was written surfaces as an ambiguous error that the
// caller resolves by looking the bid up. SendOnce does the same for any
// other request that changes state on the marketplace (a retract).
//
// For the same reason a failed POST is classified by whether any byte of it
// may have left: only a failure before the request was given a connection
// (httptrace's GotConn: DNS, dial, TLS handshake, waiting for the pool) is
// transient, since the marketplace cannot have seen the bid; any failure
// after it is ambiguous. httptrace's WroteRequest is not used: in HTTP/2 a
// cancelled request returns before the writer goroutine reports the write,
// so a bid the server already has would come back as "not sent".
package httpx
