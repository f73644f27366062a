package httpx

// Reasons set on the errors this package returns. The adapters export them
// under their own Reason* names; the values are part of their contract
// (logs, metrics and docs name them), so they must not change.
const (
	ReasonTooLarge     = "response_too_large"
	ReasonNotSent      = "not_sent"  // failed before the request was written
	ReasonNoAnswer     = "no_answer" // sent, then no (complete) answer
	ReasonInvalidInput = "invalid_request"
)
