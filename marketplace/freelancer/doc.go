// Package freelancer is the marketplace.Adapter for Freelancer.com's public
// REST API (https://developers.freelancer.com, API version 0.1).
//
// It was written from the published API shapes and the official Python SDK
// (github.com/freelancer/freelancer-sdk-python), not against a live account.
// Where the public documentation is silent (error codes for "project closed",
// paging stability, limits) the choices are made in one place each and say
// so: the error table in answers.go, the cursor in cursor.go.
//
// Endpoints used:
//
//	GET  /api/users/0.1/self/                  the account's user ID (bidder_id), once
//	GET  /api/projects/0.1/projects/active/    Scan
//	POST /api/projects/0.1/bids/               PlaceBid
//	GET  /api/projects/0.1/bids/               FindBid (projects[]=, bidders[]=)
//	GET  /api/projects/0.1/bids/               BidStatuses (bids[]=)
//	PUT  /api/projects/0.1/bids/<id>/          RetractBid (?action=retract)
//
// Every request carries the OAuth token in the "freelancer-oauth-v1" header.
// Answers are the envelope {"status":"success"|"error","result":...,
// "message":...,"error_code":...,"request_id":...}.
//
// Bids are real: the API takes no idempotency key, so this adapter never
// retries a bid, never lets net/http resend one, and reports anything that
// may have reached Freelancer as marketplace.ErrAmbiguous for the worker to
// reconcile with FindBid.
//
// docs/freelancer.md has the operator's view.
package freelancer
