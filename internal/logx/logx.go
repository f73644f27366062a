// Package logx holds bidder's log encoding: an encoder wrapper that keeps
// control characters out of every log line, whoever wrote the message
// (bidder, asynq through its sugared logger, go-redis) and whatever its
// fields quote (marketplace answers, task IDs and types from Redis).
package logx

import (
	"fmt"
	"unicode/utf8"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/bidder/bidder/internal/textsafe"
)

// Escaping wraps enc (console or JSON) so that a line it writes holds no
// C0 or C1 control character, no bidi override or isolate and no line
// separator: the message and logger name are escaped with textsafe.Escape
// (so a message cannot start a line of its own), and what zap's encoders
// pass through raw (C1 and bidi runes inside field values) is written as
// \uXXXX, which a JSON string reads back as the same text. The newlines and
// tabs zap itself writes (line end, console separators, stack traces) stay.
func Escaping(enc zapcore.Encoder) zapcore.Encoder { return escaping{enc} }

type escaping struct{ zapcore.Encoder }

func (e escaping) Clone() zapcore.Encoder { return escaping{e.Encoder.Clone()} }

func (e escaping) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	ent.Message = textsafe.Escape(ent.Message)
	ent.LoggerName = textsafe.Escape(ent.LoggerName)
	buf, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return buf, err
	}
	b := buf.Bytes()
	if plain(b) {
		return buf, nil
	}
	out := make([]byte, 0, len(b)+32)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		switch {
		case r == '\n' || r == '\t':
			out = append(out, b[i])
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case textsafe.Unsafe(r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	buf.Reset()
	_, _ = buf.Write(out)
	return buf, nil
}

// plain reports whether b is printable ASCII, newlines and tabs: the
// common case, left as it is.
func plain(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\n' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}
