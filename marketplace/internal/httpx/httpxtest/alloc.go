package httpxtest

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
)

// Flood builds a JSON body of at most size bytes: head, then elem repeated
// (joined by commas) as often as fits, then tail. It is the shape of an
// answer that stays under the byte cap while carrying millions of elements.
func Flood(head, elem, tail string, size int) []byte {
	return Repeat(head, elem, tail, max(1, (size-len(head)-len(tail)+1)/(len(elem)+1)))
}

// Repeat is head, n copies of elem joined by commas, tail.
func Repeat(head, elem, tail string, n int) []byte {
	var b strings.Builder
	b.Grow(len(head) + n*(len(elem)+1) + len(tail))
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(elem)
	}
	b.WriteString(tail)
	return []byte(b.String())
}

// Huge is head, a string of n 'x' bytes, tail: one value as large as the
// cap allows.
func Huge(head string, n int, tail string) []byte {
	return []byte(head + strings.Repeat("x", n) + tail)
}

// AllocatedBytes is the heap allocated while f runs: the less of two runs,
// so that a stray allocation elsewhere in the process does not count.
func AllocatedBytes(f func()) uint64 {
	least := ^uint64(0)
	for range 2 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// AmbiguousKeys reports whether the top-level object of data has two keys
// that encoding/json would both match to one field (equal, or equal but for
// case). The stream decoders take the first exact key; json.Unmarshal the
// last of any case, so only unambiguous answers can be compared.
func AmbiguousKeys(data []byte) bool {
	d := json.NewDecoder(bytes.NewReader(data))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	var keys []string
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return false
		}
		k, _ := t.(string)
		for _, seen := range keys {
			if strings.EqualFold(seen, k) {
				return true
			}
		}
		keys = append(keys, k)
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return false
		}
	}
	return false
}
