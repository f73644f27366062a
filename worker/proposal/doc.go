// Package proposal writes the proposal text of a bid: the rules' template
// (the default) or an answer of a language model behind an
// OpenAI-compatible chat-completions API (hosted, a gateway, or a local
// server such as Ollama, vLLM or llama.cpp's), and stores it once per
// posting so that every attempt sends the same bytes.
//
// # Flow
//
// The handler calls Store.GetOrCreate after the rules decided to bid and
// before the ledger's intent. GetOrCreate returns the posting's stored
// proposal, or asks the Writer for one and stores it with SET-if-absent:
// when two workers race, both send the text that was stored first.
//
// # The model writer
//
// One call per posting: the instructions (system message, trusted data
// only: the profile and the bid) and the posting (user message, fenced by a
// boundary derived from its own hash, and declared data). The answer is
// checked (length, no URLs, e-mail addresses, phone numbers, template
// markers, placeholders or echoes of the prompt) before it may be sent. A
// rejected answer falls back to the template. A failed call (HTTP error,
// timeout, oversized or malformed answer) or a spent token cap falls back
// too, or, with on_error: wait, returns a *WaitError (ErrWait): retry the
// task later without counting a failure.
//
// # Spend cap
//
// Spend counts tokens per marketplace per UTC hour and day in Redis, for
// all instances. A call reserves max_tokens plus an estimate of its prompt
// first (refused when the hour or the day has less room) and settles to the
// usage the server reported after; both scripts are keyed by a request ID,
// so a script run twice counts once.
//
// See docs/proposals.md.
package proposal
