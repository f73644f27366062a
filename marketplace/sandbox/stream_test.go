package sandbox

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

// TestPageStreamed: postings are decoded one by one and the walk stops at
// the limit; anything around them is skipped, not decoded.
func TestPageStreamed(t *testing.T) {
	p := func(id string) string { return strings.Replace(validPostingJSON, `"p-1"`, `"`+id+`"`, 1) }
	page, err := decodePage("m", "", 5, 200, http.Header{}, []byte(`{"extra":{"a":[1,"x",{"b":null}]},"postings":[`+p("p-1")+`,`+p("p-2")+`],"more":"y","next_cursor":"c"}`))
	if err != nil || len(page.Postings) != 2 || page.Postings[1].ID != "p-2" || page.NextCursor != "c" {
		t.Fatalf("page with extra members: %+v %v", page, err)
	}
	for name, body := range map[string]string{
		"over the limit":  `{"next_cursor":"c","postings":[` + p("a") + `,` + p("b") + `,` + p("c") + `,` + p("d") + `,` + p("e") + `,` + p("f") + `]}`,
		"trailing value":  `{"postings":[],"next_cursor":"c"} {}`,
		"too many values": `{"k":[` + strings.Repeat("0,", maxValues) + `0],"postings":[],"next_cursor":"c"}`,
	} {
		_, err := decodePage("m", "", 5, 200, http.Header{}, []byte(body))
		var me *marketplace.Error
		if !errors.As(err, &me) || me.Reason != ReasonInvalid && me.Reason != ReasonMalformed {
			t.Errorf("%s: %v", name, err)
		}
	}
}
