package jsonstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// rebuild reads any document through a Decoder, the way the adapters walk
// answers, skipping the top-level members named in skipKeys.
func rebuild(data []byte, skipKeys string) (any, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	d := New(data)
	var v any
	var err error
	switch {
	case len(trimmed) > 0 && trimmed[0] == '{':
		m := map[string]any{}
		var null bool
		null, err = d.Object(1<<20, func(k string) error {
			if skipKeys != "" && strings.Contains(skipKeys, "|"+k+"|") {
				delete(m, k) // a later member of the same key replaces, like Unmarshal
				return d.Skip()
			}
			var raw json.RawMessage
			if err := d.Decode(&raw); err != nil {
				return err
			}
			inner, err := rebuild(raw, "")
			m[k] = inner
			return err
		})
		if !null {
			v = m
		}
	case len(trimmed) > 0 && trimmed[0] == '[':
		l := []any{}
		var null bool
		null, err = d.Array(func(int) error {
			var raw json.RawMessage
			if err := d.Decode(&raw); err != nil {
				return err
			}
			inner, err := rebuild(raw, "")
			l = append(l, inner)
			return err
		})
		if !null {
			v = l
		}
	default:
		err = d.Decode(&v)
	}
	if err != nil {
		return nil, err
	}
	return v, d.End()
}

func FuzzMatchesUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"postings":[{"id":"p-1"},{}],"next_cursor":"c"}`, `[1,"x",{"a":[true,null]},-2.5e3]`, `null`, `{}`, `[]`,
		`{"a":1,"a":2}`, `{"s":[1,2,3],"k":{"s":1}}`, ` {"a":"\u00e9\ud83d\ude00"} `, `{"a":1} {"b":2}`, `[1,2`, `{"a" 1}`,
		`[{}{}]`, `"just a string"`, `{"a":[[[[]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want any
		werr := json.Unmarshal(data, &want)
		got, err := rebuild(data, "")
		if (werr == nil) != (err == nil) {
			t.Fatalf("%q: Unmarshal err %v, stream err %v", data, werr, err)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: stream %#v, Unmarshal %#v", data, got, want)
		}
		// Skipping members must not change what is read around them.
		got, err = rebuild(data, "|s|k|")
		if m, ok := want.(map[string]any); ok && werr == nil {
			delete(m, "s")
			delete(m, "k")
		}
		if (werr == nil) != (err == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("%q with skips: %#v %v; want %#v %v", data, got, err, want, werr)
		}
	})
}

func TestLimitsAndShapes(t *testing.T) {
	d := New([]byte(`{"a":0,"b":0,"c":0}`))
	_, err := d.Object(2, func(string) error { return d.Skip() })
	if !errors.Is(err, ErrTooMany) {
		t.Errorf("3 members with max 2: %v", err)
	}
	d = New([]byte(`[{"id":1},"x",{"id":2}]`))
	var ids []int
	_, err = d.Array(func(int) error {
		var v struct{ ID int }
		err := d.Decode(&v)
		var ve *ValueError
		if errors.As(err, &ve) {
			return nil // the wrong element is passed over, the walk goes on
		}
		ids = append(ids, v.ID)
		return err
	})
	if err != nil || !reflect.DeepEqual(ids, []int{1, 2}) {
		t.Errorf("walk past a wrong element: %v %v", ids, err)
	}
	for _, c := range []struct {
		doc  string
		want error
	}{{`[1]`, ErrShape}, {`"s"`, ErrShape}, {`{"a":1`, nil}, {`{} []`, ErrShape}} {
		d := New([]byte(c.doc))
		_, err := d.Object(10, func(string) error { return d.Skip() })
		if err == nil {
			err = d.End()
		}
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.doc, err, c.want)
		}
	}
	if null, err := New([]byte(`null`)).Array(func(int) error { return nil }); !null || err != nil {
		t.Errorf("null array: %v %v", null, err)
	}
}

// TestWalkStopsAtTheLimit: what a walk costs depends on the limit, not on
// how long the list is. (json.Decoder allocates a little for every value it
// reads, so every walk needs its limit.)
func TestWalkStopsAtTheLimit(t *testing.T) {
	allocs := func(n int) float64 {
		doc := []byte(`{"list":[` + strings.TrimSuffix(strings.Repeat(`{"a":[1,"x\u00e9",null]},7,"s",`, n), ",") + `]}`)
		return testing.AllocsPerRun(5, func() {
			d := New(doc)
			_, err := d.Object(4, func(string) error {
				_, err := d.Array(func(i int) error {
					if i == 10 {
						return TooMany(10, "elements")
					}
					return d.Skip()
				})
				return err
			})
			if !errors.Is(err, ErrTooMany) {
				t.Fatal(err)
			}
		})
	}
	small, big := allocs(4), allocs(100_000)
	if big > small+2 {
		t.Fatalf("a walk limited to 10 elements took %v allocations over 300,000, %v over 12", big, small)
	}
}
