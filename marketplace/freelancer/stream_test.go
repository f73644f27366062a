package freelancer

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

// TestProjectsStreamed: the answer is walked in order, so what an answer
// keeps must not depend on where its parts sit.
func TestProjectsStreamed(t *testing.T) {
	ok := `{"status":"success","result":`
	proj := `{"id":%s,"owner_id":2,"title":"t","status":"active","type":"fixed","currency":{"code":"USD"},"budget":{"minimum":10},"time_submitted":1767225600}`
	one := strings.Replace(proj, "%s", "1", 1)
	decode := func(body string) (projectsPage, error) {
		return decodeProjects("fl", "https://x", 3, 200, http.Header{}, []byte(body), fuzzNow)
	}

	// Users after or before the projects: the owner's rating is found.
	for _, body := range []string{
		ok + `{"projects":[` + one + `],"users":{"2":{"employer_reputation":{"entire_history":{"overall":4.5}}}}}}`,
		ok + `{"users":{"2":{"employer_reputation":{"entire_history":{"overall":4.5}}}},"projects":[` + one + `]}}`,
	} {
		page, err := decode(body)
		if err != nil || len(page.postings) != 1 || page.postings[0].Client.Rating != 4.5 {
			t.Errorf("owner rating not found: %+v %v", page.postings, err)
		}
	}

	// An element of the wrong type is dropped and counted; the walk goes on.
	page, err := decode(ok + `{"projects":["x",` + one + `,7]}}`)
	if err != nil || len(page.postings) != 1 || page.dropped != 2 || len(page.problems) != 2 {
		t.Errorf("wrong-type projects: %d postings, %d dropped (%v), %v", len(page.postings), page.dropped, page.problems, err)
	}

	// More projects than asked for is a broken answer, not a longer page.
	_, err = decode(ok + `{"projects":[` + strings.Repeat(one+`,`, 3) + one + `]}}`)
	var me *marketplace.Error
	if !errors.As(err, &me) || !errors.Is(err, marketplace.ErrPermanent) || me.Reason != ReasonInvalid || !strings.Contains(err.Error(), "more than 3 projects for limit 3") {
		t.Errorf("4 projects for limit 3: %v", err)
	}
}
