package freelancer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bidder/bidder/marketplace"
)

// A fake Freelancer API serving the documented shapes: the envelope, the
// project and user objects of /projects/0.1/projects/active/, bids, and
// /users/0.1/self/. It accepts every bid it is sent (even a second one on a
// project) and counts them, so only the adapter and worker can keep a
// project at one bid.

const (
	testToken  = "fl-test-token-5c2b9d"
	testSelfID = int64(4242)
)

type fakeProject struct {
	ID        int64
	OwnerID   int64
	Title     string
	Type      string // fixed | hourly
	Currency  string
	Min, Max  float64
	Submitted int64
	Seo       string
	Jobs      []string
	Status    string // active | closed
	Preview   string
	Full      string
}

type fakeBid struct {
	ID, ProjectID, BidderID int64
	Amount                  float64
	Period                  int
	Milestone               float64
	Description             string
	Submitted               int64
	Retracted               bool
	// AwardStatus is "" (no decision), or a BidAwardStatusApi value as
	// Freelancer's web client names them; AwardChanged its time.
	AwardStatus  string
	AwardChanged int64
}

// fault is what the server does with one request.
type fault int

const (
	faultNone         fault = iota
	fault503                // 503 before doing anything
	fault429                // 429 Retry-After: 1 before doing anything
	faultStoreDrop          // store the bid, then drop the connection
	faultStore502           // store the bid, then answer 502
	faultNoStore500         // answer 500 without storing
	faultMalformed200       // store the bid, then a 200 that is not JSON
)

type fakeServer struct {
	t  *testing.T
	hs *httptest.Server

	mu       sync.Mutex
	projects []*fakeProject // any order; answers sort newest first
	users    map[int64]map[string]any
	bids     []fakeBid
	nextBid  int64
	selfHits int
	posts    int
	requests []*http.Request // copies of every request, for shape checks
	// selfFail makes the next n GET /self answer 500.
	selfFail int
	// ignoreFromTime makes the server ignore from_time, as a server whose
	// filter means something else might.
	ignoreFromTime bool
	// onPost and onGet choose faults; nil means none.
	onPost func(projectID int64, attempt int) fault
	onGet  func(r *http.Request) fault
	// postAttempts counts POSTs per project.
	postAttempts map[int64]int
	// closeOnPost closes these projects' bidding: POST answers the
	// "project closed" error.
	closeOnPost map[int64]bool
	// onPut chooses the fault of a retract; nil means none.
	onPut func(bidID int64) fault
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, users: map[int64]map[string]any{}, nextBid: 9000, postAttempts: map[int64]int{}, closeOnPost: map[int64]bool{}}
	f.hs = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.hs.Close)
	return f
}

func (f *fakeServer) add(ps ...*fakeProject) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.projects = append(f.projects, ps...)
}

func (f *fakeServer) setStatus(id int64, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.projects {
		if p.ID == id {
			p.Status = status
		}
	}
}

func (f *fakeServer) bidsOn(projectID int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, b := range f.bids {
		if b.ProjectID == projectID {
			n++
		}
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"status": "error", "message": msg, "error_code": code, "request_id": "req-test"})
}

func success(w http.ResponseWriter, result any) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "result": result, "request_id": "req-test"})
}

func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(r.Context()))
	f.mu.Unlock()
	if r.Header.Get("freelancer-oauth-v1") != testToken {
		apiError(w, http.StatusUnauthorized, "RestExceptionCodes.NOT_AUTHENTICATED", "You must be authenticated to perform this request")
		return
	}
	if r.Method == http.MethodGet && f.onGet != nil {
		switch f.onGet(r) {
		case fault503:
			apiError(w, http.StatusServiceUnavailable, "", "unavailable")
			return
		case fault429:
			w.Header().Set("Retry-After", "1")
			apiError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "slow down")
			return
		}
	}
	switch {
	case r.URL.Path == pathSelf && r.Method == http.MethodGet:
		f.mu.Lock()
		f.selfHits++
		failing := f.selfFail > 0
		if failing {
			f.selfFail--
		}
		f.mu.Unlock()
		// Slow enough that concurrent first users overlap.
		time.Sleep(20 * time.Millisecond)
		if failing {
			apiError(w, http.StatusInternalServerError, "", "oops")
			return
		}
		success(w, map[string]any{"id": testSelfID, "username": "bidder-test"})
	case r.URL.Path == pathActive && r.Method == http.MethodGet:
		f.active(w, r)
	case r.URL.Path == pathBids && r.Method == http.MethodGet:
		f.listBids(w, r)
	case r.URL.Path == pathBids && r.Method == http.MethodPost:
		f.placeBid(w, r)
	case strings.HasPrefix(r.URL.Path, pathBids) && r.Method == http.MethodPut:
		f.bidAction(w, r)
	case strings.HasPrefix(r.URL.Path, pathProjects) && r.Method == http.MethodGet:
		f.getProject(w, r)
	default:
		apiError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
	}
}

// getProject answers GET /projects/0.1/projects/<id>/, whatever the
// project's status.
func (f *fakeServer) getProject(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(r.URL.Path, pathProjects), "/"), 10, 64)
	if err != nil {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "no such endpoint")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.projects {
		if p.ID == id {
			success(w, f.projectJSON(p, true))
			return
		}
	}
	apiError(w, http.StatusNotFound, "ProjectExceptionCodes.PROJECT_NOT_FOUND", "project not found")
}

func (f *fakeServer) projectJSON(p *fakeProject, full bool) map[string]any {
	jobs := []map[string]any{}
	for i, j := range p.Jobs {
		jobs = append(jobs, map[string]any{"id": i + 1, "name": j})
	}
	m := map[string]any{
		"id":                      p.ID,
		"owner_id":                p.OwnerID,
		"title":                   p.Title,
		"status":                  p.Status,
		"seo_url":                 p.Seo,
		"currency":                map[string]any{"id": 1, "code": p.Currency, "sign": "$", "name": "Currency", "exchange_rate": 1},
		"preview_description":     p.Preview,
		"type":                    p.Type,
		"bidperiod":               7,
		"budget":                  map[string]any{"minimum": p.Min, "maximum": p.Max},
		"time_submitted":          p.Submitted,
		"frontend_project_status": "open",
		"jobs":                    jobs,
	}
	if p.Currency == "" {
		delete(m, "currency")
	}
	if p.Max == 0 {
		m["budget"] = map[string]any{"minimum": p.Min}
	}
	if full {
		m["description"] = p.Full
	}
	return m
}

func (f *fakeServer) active(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	offset, _ := strconv.Atoi(q.Get("offset"))
	from, _ := strconv.ParseInt(q.Get("from_time"), 10, 64)
	if limit <= 0 {
		limit = 10
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var list []*fakeProject
	for _, p := range f.projects {
		if p.Status != "active" {
			continue
		}
		if from > 0 && !f.ignoreFromTime && p.Submitted < from {
			continue
		}
		list = append(list, p)
	}
	// Newest first, like the site: every new project shifts every offset.
	slices.SortFunc(list, func(a, b *fakeProject) int {
		if a.Submitted != b.Submitted {
			return cmpInt(b.Submitted, a.Submitted)
		}
		return cmpInt(b.ID, a.ID)
	})
	total := len(list)
	if offset > len(list) {
		offset = len(list)
	}
	list = list[offset:min(offset+limit, len(list))]
	projects := []any{}
	users := map[string]any{}
	for _, p := range list {
		projects = append(projects, f.projectJSON(p, q.Get("full_description") == "true"))
		if u, ok := f.users[p.OwnerID]; ok && q.Get("user_details") == "true" {
			users[strconv.FormatInt(p.OwnerID, 10)] = u
		}
	}
	success(w, map[string]any{"projects": projects, "total_count": total, "users": users})
}

func (f *fakeServer) listBids(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []any{}
	for _, b := range f.bids {
		if ps := q["projects[]"]; len(ps) > 0 && !slices.Contains(ps, strconv.FormatInt(b.ProjectID, 10)) {
			continue
		}
		if bs := q["bidders[]"]; len(bs) > 0 && !slices.Contains(bs, strconv.FormatInt(b.BidderID, 10)) {
			continue
		}
		if ids := q["bids[]"]; len(ids) > 0 && !slices.Contains(ids, strconv.FormatInt(b.ID, 10)) {
			continue
		}
		out = append(out, bidJSON(b))
	}
	success(w, map[string]any{"bids": out})
}

func bidJSON(b fakeBid) map[string]any {
	m := map[string]any{
		"id": b.ID, "bidder_id": b.BidderID, "project_id": b.ProjectID, "retracted": b.Retracted,
		"amount": b.Amount, "period": b.Period, "description": b.Description,
		"milestone_percentage": b.Milestone, "time_submitted": b.Submitted, "submitdate": b.Submitted, "project_owner_id": 1,
		"award_status": nil, "frontend_bid_status": "active",
	}
	if b.AwardStatus != "" {
		m["award_status"] = b.AwardStatus
		m["award_status_changed_time"] = b.AwardChanged
		m["time_awarded"] = b.AwardChanged
	}
	return m
}

// bidAction serves PUT /bids/<id>/?action=retract as the official SDK sends
// it. Freelancer documents no error codes for refused retracts; the codes
// below other than BID_NOT_FOUND are made up, so the adapter must not rely
// on them.
func (f *fakeServer) bidAction(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(r.URL.Path, pathBids), "/"), 10, 64)
	if err != nil || r.URL.Query().Get("action") != "retract" {
		apiError(w, http.StatusBadRequest, "RestExceptionCodes.BAD_FORM", "bad action")
		return
	}
	ft := faultNone
	if f.onPut != nil {
		ft = f.onPut(id)
	}
	if ft == fault503 {
		apiError(w, http.StatusServiceUnavailable, "", "unavailable")
		return
	}
	if ft == fault429 {
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "slow down")
		return
	}
	f.mu.Lock()
	var b *fakeBid
	for i := range f.bids {
		if f.bids[i].ID == id && f.bids[i].BidderID == testSelfID {
			b = &f.bids[i]
		}
	}
	switch {
	case b == nil:
		f.mu.Unlock()
		apiError(w, http.StatusNotFound, "ProjectExceptionCodes.BID_NOT_FOUND", "Bid not found")
		return
	case b.Retracted:
		f.mu.Unlock()
		apiError(w, http.StatusBadRequest, "ProjectExceptionCodes.MADE_UP_ALREADY_RETRACTED", "You have already retracted this bid")
		return
	case b.AwardStatus != "":
		f.mu.Unlock()
		apiError(w, http.StatusBadRequest, "ProjectExceptionCodes.MADE_UP_NOT_RETRACTABLE", "This bid can not be retracted")
		return
	}
	b.Retracted = true
	f.mu.Unlock()
	answerStored(w, ft, func() { writeJSON(w, http.StatusOK, map[string]any{"status": "success", "request_id": "req-test"}) })
}

// setAward gives the bid an award status, as the client's actions would.
func (f *fakeServer) setAward(bidID int64, status string, at int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.bids {
		if f.bids[i].ID == bidID {
			f.bids[i].AwardStatus, f.bids[i].AwardChanged = status, at
		}
	}
}

// addBid stores a bid directly, as if another client had placed it.
func (f *fakeServer) addBid(b fakeBid) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bids = append(f.bids, b)
}

func (f *fakeServer) placeBid(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProjectID   int64   `json:"project_id"`
		BidderID    int64   `json:"bidder_id"`
		Amount      float64 `json:"amount"`
		Period      int     `json:"period"`
		Milestone   float64 `json:"milestone_percentage"`
		Description string  `json:"description"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "RestExceptionCodes.BAD_FORM", "bad body")
		return
	}
	f.mu.Lock()
	f.posts++
	f.postAttempts[req.ProjectID]++
	attempt := f.postAttempts[req.ProjectID]
	var proj *fakeProject
	for _, p := range f.projects {
		if p.ID == req.ProjectID {
			proj = p
		}
	}
	closed := f.closeOnPost[req.ProjectID]
	f.mu.Unlock()

	ft := faultNone
	if f.onPost != nil {
		ft = f.onPost(req.ProjectID, attempt)
	}
	switch {
	case ft == fault503:
		apiError(w, http.StatusServiceUnavailable, "", "unavailable")
		return
	case ft == fault429:
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "slow down")
		return
	case ft == faultNoStore500:
		apiError(w, http.StatusInternalServerError, "", "oops")
		return
	case proj == nil:
		apiError(w, http.StatusNotFound, "ProjectExceptionCodes.PROJECT_NOT_FOUND", "Project not found")
		return
	case closed || proj.Status != "active":
		apiError(w, http.StatusBadRequest, "ProjectExceptionCodes.PROJECT_NOT_ACTIVE", "This project is no longer accepting bids")
		return
	case req.BidderID != testSelfID:
		apiError(w, http.StatusForbidden, "", "bidder_id is not you")
		return
	case req.Amount <= 0:
		apiError(w, http.StatusBadRequest, "ProjectExceptionCodes.INVALID_AMOUNT", "Bid amount out of range")
		return
	}
	f.mu.Lock()
	f.nextBid++
	b := fakeBid{ID: f.nextBid, ProjectID: req.ProjectID, BidderID: req.BidderID, Amount: req.Amount, Period: req.Period,
		Milestone: req.Milestone, Description: req.Description, Submitted: time.Now().Unix()}
	f.bids = append(f.bids, b)
	f.mu.Unlock()
	answerStored(w, ft, func() { success(w, bidJSON(b)) })
}

// answerStored answers a request whose change was stored, as fault ft says;
// without a fault, with ok.
func answerStored(w http.ResponseWriter, ft fault, ok func()) {
	switch ft {
	case faultStoreDrop:
		drop(w)
	case faultStore502:
		apiError(w, http.StatusBadGateway, "", "bad gateway")
	case faultMalformed200:
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"status":"succ`))
	default:
		ok()
	}
}

// adapter builds an adapter on f with test-friendly settings.
func (f *fakeServer) adapter(t *testing.T, opts map[string]string) *Adapter {
	t.Helper()
	a, err := NewAdapter(marketplace.Config{ID: "freelancer", BaseURL: f.hs.URL, Token: testToken, RequestTimeout: 2 * time.Second, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// bidder is an adapter ready to bid: its account resolved, as the worker's
// PrepareBid does before every claim.
func (f *fakeServer) bidder(t *testing.T, opts map[string]string) *Adapter {
	t.Helper()
	a := f.adapter(t, opts)
	if err := a.PrepareBid(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// project is a plain active fixed-price project submitted at ts.
func project(id, ts int64) *fakeProject {
	return &fakeProject{
		ID: id, OwnerID: 100 + id%7, Title: "Project " + strconv.FormatInt(id, 10), Type: "fixed", Currency: "USD",
		Min: 100, Max: 500, Submitted: ts, Seo: "python/project-" + strconv.FormatInt(id, 10), Jobs: []string{"Python"},
		Status: "active", Preview: "short", Full: "the full description",
	}
}

func (f *fakeServer) postCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts
}

func (f *fakeServer) selfCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.selfHits
}

func (f *fakeServer) reqs() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}
