package rules

import (
	"reflect"
	"testing"

	"github.com/bidder/bidder/marketplace"
)

// ProposalData copies Posting's fields; a field added to Posting must be
// added here too, or templates silently cannot use it.
func TestProposalDataHasEveryPostingField(t *testing.T) {
	pd := reflect.TypeOf(ProposalData{})
	pt := reflect.TypeOf(marketplace.Posting{})
	for i := 0; i < pt.NumField(); i++ {
		f := pt.Field(i)
		g, ok := pd.FieldByName(f.Name)
		if !ok || g.Type != f.Type {
			t.Errorf("ProposalData lacks Posting.%s (%s)", f.Name, f.Type)
		}
	}
	p := goodPosting()
	p.URL = "https://x.invalid/p-1"
	d := NewProposalData(p, 12.5)
	back := reflect.ValueOf(d).Elem()
	pv := reflect.ValueOf(p)
	for i := 0; i < pt.NumField(); i++ {
		name := pt.Field(i).Name
		if !reflect.DeepEqual(back.FieldByName(name).Interface(), pv.Field(i).Interface()) {
			t.Errorf("NewProposalData does not copy %s", name)
		}
	}
	if d.Amount != 12.5 {
		t.Errorf("Amount = %v", d.Amount)
	}
}
