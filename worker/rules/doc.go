// Package rules decides whether bidder bids on a posting, with what amount and
// proposal, and caps how many bids all instances place per marketplace.
//
// # Rule order
//
// Engine.Decide runs these rules in this order; the first that fails decides,
// and its name is Decision.Rule. Cheap field checks come first so most
// postings are decided without touching their text.
//
//  1. status: the posting's status must be exactly "open"
//  2. max_age: now - posted_at <= max_age (a missing posted_at fails)
//  3. currency: budget currency in budget.currencies, if set
//  4. budget_range: the budget must be well-formed (finite, >= 0, min <= max)
//     and of a known type; its [min, max] must overlap the configured range
//     for that type (a posting with no max is read as [min, min])
//  5. client_rating: client rating >= client.min_rating
//  6. client_spend: client total spend >= client.min_total_spend
//  7. country: in client.allow_countries (if set), not in deny_countries
//  8. skills: every skills.required, and one of skills.any_of (if set)
//  9. exclude_keyword: no keywords.exclude in the title or the description
//  10. include_keyword: one of keywords.include (if set) in title or description
//  11. amount: the amount rule for the budget type gives an amount > 0
//  12. proposal: the template renders, non-empty, within max_bytes
//  13. ok: bid
//
// Zero limits mean "no limit". Comparisons are inclusive: a value equal to a
// min or max passes.
//
// # Keyword matching
//
// Text and keywords are cut into words: maximal runs of Unicode letters,
// digits and combining marks, lower-cased. Everything else separates words,
// including hyphens, underscores, apostrophes, dots, commas and slashes. A
// keyword matches where its words appear consecutively in the title or in
// the description (a phrase never spans the two). Hence:
//
//   - "live" does not match "deliver", "lively" or "livestream", but does
//     match "Live," and "live-stream";
//   - "python" matches "Python," and "(python)" but not "python3" or
//     "pythonic": a version suffix is a different word, list it if wanted;
//   - "video call" matches "Video  Call", "video-call" and "video\ncall" but
//     not "videocall"; "in-person" and "in person" are the same keyword;
//   - a trailing run of '+' or '#' stays on its word, so "c++" and "c#" are
//     keywords of their own and "c" matches neither;
//   - case-insensitivity is per-rune lower-casing (no full case folding:
//     "ß" does not match "ss").
//
// Matching is linear in the text length however many keywords are set: the
// text is cut once and words are looked up in a map of first words.
//
// # Amount
//
// Each budget type has its own amount rule (amount.fixed, amount.hourly);
// postings of a type without one are skipped. Strategies: fixed (an amount),
// percent (of the budget max, or its min when there is no max; the max for
// hourly postings too, as the rate the client offered) and range_point
// (min + point*(max-min)). The result is rounded to cents, then clamped to
// [min_amount, max_amount]; an amount that is still <= 0 skips the posting.
// Every amount is in the posting's currency; nothing is converted.
//
// # Bid budget
//
// Budget counts bids per marketplace per UTC hour and UTC day in Redis and
// takes one only if both windows have room, in one Lua script. A Redis error
// means "do not bid" (ErrBudgetUnavailable). Take is called after Decide said
// bid, right before placing the bid, so skipped postings spend nothing; a bid
// that then fails is not refunded (the cap errs towards fewer bids).
//
// See docs/rules.md for a complete YAML example.
package rules
