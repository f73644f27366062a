package sandbox

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace/internal/statusbatch"
)

// A status answer the size of the cap, holding ~350 k empty entries, costs
// what the batch costs: the list is refused at the entry after the last
// bid asked about, before it is decoded.
func TestStatusDecodeIsBoundedByTheBatch(t *testing.T) {
	body := []byte(`{"statuses":[` + strings.Repeat(`{},`, maxStatusAnswerBytes/3-10) + `{}]}`)
	var err error
	n := statusbatch.AllocatedBytes(func() { _, err = decodeStatuses(askedBids, http.StatusOK, http.Header{}, body) })
	if err == nil {
		t.Fatal("accepted a list longer than the batch")
	}
	if n > 64<<10 {
		t.Fatalf("decoding a %d-byte hostile answer allocated %d bytes, want under 64 KiB", len(body), n)
	}
}
