package freelancer

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/statusbatch"
)

// A status answer the size of the cap, holding ~700 k empty bids, costs
// what MaxStatusBatch bids cost: the list is refused at the one too many.
func TestStatusDecodeIsBoundedByTheBatch(t *testing.T) {
	body := []byte(`{"status":"success","result":{"bids":[` + strings.Repeat(`{},`, maxStatusAnswerBytes/3-20) + `{}]}}`)
	var err error
	n := statusbatch.AllocatedBytes(func() { _, err = decodeStatuses(fuzzAsked, testSelfID, http.StatusOK, http.Header{}, body, fuzzNow) })
	if err == nil {
		t.Fatal("accepted a list longer than MaxStatusBatch")
	}
	if n > 64<<10 {
		t.Fatalf("decoding a %d-byte hostile answer allocated %d bytes, want under 64 KiB", len(body), n)
	}
}
