package apierr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"connectrpc.com/connect"
)

// Interceptor converts every error a handler returns to a connect error with
// its proper code (Wire), so handlers return the control plane's own errors
// and never choose wire codes themselves.
func Interceptor() connect.Interceptor { return interceptor{} }

type interceptor struct{}

func (interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return nil, Wire(err)
		}
		return resp, nil
	}
}

func (interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return Wire(next(ctx, receiving{conn}))
	}
}

// receiving gives a request stream's framing errors the caller's code:
// connect reports a frame cut short or malformed as internal, but it is
// what the client sent that is wrong.
type receiving struct{ connect.StreamingHandlerConn }

func (c receiving) Receive(m any) error {
	err := c.StreamingHandlerConn.Receive(m)
	if errors.Is(err, io.EOF) {
		return err // the end of the stream (connect may wrap it in an error of its own)
	}
	var ce *connect.Error
	if errors.As(err, &ce) && (ce.Code() == connect.CodeInternal || ce.Code() == connect.CodeUnknown) {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("malformed request stream: %s", ce.Message()))
	}
	return err
}

// Limits of what an error message repeats of its input: a name of 50 MB
// must not come back as a 50 MB error. A word (a run without spaces, where
// a quoted input lands) is cut, so the advice around it survives; the whole
// message is capped too.
const (
	maxWord    = 80
	maxMessage = 2048
)

// Shorten cuts what a message repeats of its input to a readable size.
func Shorten(msg string) string {
	if len(msg) <= maxWord {
		return msg
	}
	var b strings.Builder
	for i, w := range strings.Split(msg, " ") {
		if i > 0 {
			b.WriteByte(' ')
		}
		if len(w) > maxWord {
			w = fmt.Sprintf("%s…(%d bytes)", cut(w, maxWord), len(w))
		}
		b.WriteString(w)
		if b.Len() > maxMessage {
			return cut(b.String(), maxMessage) + "…"
		}
	}
	return b.String()
}

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// shortened returns a connect error whose message is Shorten'ed, keeping
// its code and details.
func shortened(ce *connect.Error) error {
	msg := ce.Message()
	short := Shorten(msg)
	if short == msg {
		return ce
	}
	out := connect.NewError(ce.Code(), errors.New(short))
	for _, d := range ce.Details() {
		out.AddDetail(d)
	}
	return out
}
