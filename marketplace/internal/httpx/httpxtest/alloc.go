package httpxtest

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
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

// Bounds on what decoding one hostile answer of at most maxBytes may
// allocate.
//
// FloodBound is for answers whose cost came from their element count: the
// decoders refuse an answer with more JSON values than any real one before
// decoding it and stop every list at the largest real one, so at most the
// answer's own size is left (a decoder that skips a list it does not read
// still buffers it).
func FloodBound(maxBytes int) uint64 { return uint64(maxBytes) }

// ValueBound is for everything else: one huge value is decoded, so it costs
// a few times its size (json.Decoder buffers a value whole, doubling its
// buffer, before decoding it), and encoding/json's worst per-value cost (an
// escaped key of a field, with a value of the wrong type) is ~120 bytes.
func ValueBound(maxBytes int) uint64 { return 6 * uint64(maxBytes) }

// Hostile is one hostile answer and the decoders it is aimed at.
type Hostile struct {
	Name     string
	Decoders string // names in CheckBounded's decoders, space-separated
	Status   int
	Body     []byte
	Bound    uint64
}

// CheckBounded runs every answer through the decoders it names and fails
// the test for a body over maxBytes or a decoder that allocates more than
// the answer's bound. With -v it logs every figure (docs/BENCHMARKS.md).
func CheckBounded(t *testing.T, maxBytes int, decoders map[string]func(status int, body []byte), answers []Hostile) {
	t.Helper()
	if testing.Short() {
		t.Skip("decodes answers of the full size cap")
	}
	for _, a := range answers {
		if len(a.Body) > maxBytes {
			t.Fatalf("%s: %d bytes, over the cap", a.Name, len(a.Body))
		}
		for _, name := range strings.Fields(a.Decoders) {
			decode, ok := decoders[name]
			if !ok {
				t.Fatalf("%s: no decoder %q", a.Name, name)
			}
			got := AllocatedBytes(func() { decode(a.Status, a.Body) })
			t.Logf("%-8s %-40s %6.2f MiB", name, a.Name, float64(got)/(1<<20))
			if got > a.Bound {
				t.Errorf("%s decoder, %s (%d bytes): allocated %d bytes, bound %d", name, a.Name, len(a.Body), got, a.Bound)
			}
		}
	}
}

// Aim is a Hostile answer with its fields in order.
func Aim(name, decoders string, status int, body []byte, bound uint64) Hostile {
	return Hostile{Name: name, Decoders: decoders, Status: status, Body: body, Bound: bound}
}
