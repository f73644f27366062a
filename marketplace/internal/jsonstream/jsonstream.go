// Package jsonstream decodes marketplace answers element by element, so
// that what an answer costs is bounded by what the caller accepts, not by
// what the server sent. A byte cap alone is no bound: an 8 MiB body of
// {"postings":[{},{},...]} carries 2.8 M elements, and decoding it into
// typed slices took 2 GB.
//
// CheckValues bounds what is inside the elements: it refuses data holding
// more than max JSON values before anything is decoded. encoding/json
// allocates per value in its worst cases (an error value for each member of
// the wrong type, a copy of each escaped key), so a count bounds what any
// shape can cost; a huge single value is bounded by the byte cap.
//
// A Decoder walks objects (Object, with a member limit) and arrays (Array,
// whose callback decides per element), decoding the values it wants
// (Decode) and skipping the rest without copying them (Skip). json.Decoder
// allocates a little for every value it reads (an error value marks the end
// of each), so every walk must have a limit; the adapters' limits are the
// largest legitimate answers.
package jsonstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrTooMany is wrapped by every error for a list or object longer than
// its caller allows.
var ErrTooMany = errors.New("too many elements")

// ErrShape is wrapped by the error for a value of the wrong kind (an array
// where an object belongs, say).
var ErrShape = errors.New("unexpected JSON value")

// TooMany is the error for more than max of what.
func TooMany(max int, what string) error {
	return fmt.Errorf("%w: more than %d %s", ErrTooMany, max, what)
}

// CheckValues returns ErrTooMany if data holds more than max values. It
// counts what starts a value or member outside strings ('[', '{', ',' and
// ':'), one pass without allocating; it does not validate.
func CheckValues(data []byte, max int) error {
	n, inString := 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{', ',', ':':
			if n++; n > max {
				return TooMany(max, "JSON values")
			}
		}
	}
	return nil
}

// Decoder reads one JSON document. A method's error other than a
// *ValueError leaves the Decoder unusable.
type Decoder struct{ d *json.Decoder }

// New returns a Decoder over data.
func New(data []byte) *Decoder { return &Decoder{d: json.NewDecoder(bytes.NewReader(data))} }

// ValueError is an error from decoding one value that was read whole
// (wrong type, a field's own check): the Decoder stands after that value
// and can go on.
type ValueError struct{ Err error }

func (e *ValueError) Error() string { return e.Err.Error() }
func (e *ValueError) Unwrap() error { return e.Err }

// Decode decodes the next value into v, as json.Unmarshal would.
func (d *Decoder) Decode(v any) error {
	err := d.d.Decode(v)
	var syntax *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syntax) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		// json.Decoder reads a value whole before decoding it, so these
		// come from reading: the input is broken from here on.
		return eof(err)
	}
	return &ValueError{Err: err}
}

// skip takes any value without looking at it: json.Decoder hands an
// Unmarshaler the value's bytes in its own buffer, so nothing is copied.
type skip struct{}

func (*skip) UnmarshalJSON([]byte) error { return nil }

// Skip consumes the next value.
func (d *Decoder) Skip() error { return eof(d.d.Decode(&skip{})) }

// Object reads an object, calling fn with each member's key; fn must
// consume the member's value (Decode, Skip, Object or Array) or return an
// error, which ends the walk. More than max members is ErrTooMany: every
// key is a string to allocate. A JSON null reads as no object (null true).
func (d *Decoder) Object(max int, fn func(key string) error) (null bool, err error) {
	if null, err := d.open('{', "an object"); null || err != nil {
		return null, err
	}
	for n := 0; d.d.More(); n++ {
		if n == max {
			return false, TooMany(max, "object members")
		}
		t, err := d.d.Token()
		if err != nil {
			return false, eof(err)
		}
		key, ok := t.(string)
		if !ok {
			return false, fmt.Errorf("%w: object key %v", ErrShape, t)
		}
		if err := fn(key); err != nil {
			return false, err
		}
	}
	return false, d.close()
}

// Array reads an array, calling fn with each element's index; fn must
// consume the element or return an error, which ends the walk (TooMany,
// for a list longer than the caller takes). A JSON null reads as no array.
func (d *Decoder) Array(fn func(i int) error) (null bool, err error) {
	if null, err := d.open('[', "an array"); null || err != nil {
		return null, err
	}
	for i := 0; d.d.More(); i++ {
		if err := fn(i); err != nil {
			return false, err
		}
	}
	return false, d.close()
}

func (d *Decoder) open(delim json.Delim, want string) (bool, error) {
	t, err := d.d.Token()
	switch {
	case err != nil:
		return false, eof(err)
	case t == nil:
		return true, nil
	case t == delim:
		return false, nil
	}
	return false, fmt.Errorf("%w: want %s or null, got %s", ErrShape, want, kind(t))
}

func (d *Decoder) close() error {
	_, err := d.d.Token()
	return eof(err)
}

// End checks that nothing but white space follows the document.
func (d *Decoder) End() error {
	t, err := d.d.Token()
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("%w: %s after the top-level value", ErrShape, kind(t))
}

// eof turns the end of input in the middle of a value into the error it is.
func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func kind(t json.Token) string {
	switch t.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", t)
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}
