package apierr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/model"
)

func TestWireCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want connect.Code
	}{
		{model.Invalidf("bad"), connect.CodeInvalidArgument},
		{fmt.Errorf("wrapped: %w", model.NotFoundf("gone")), connect.CodeNotFound},
		{model.Preconditionf("not yet"), connect.CodeFailedPrecondition},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
		{context.Canceled, connect.CodeCanceled},
		{connect.NewError(connect.CodeResourceExhausted, errors.New("big")), connect.CodeResourceExhausted},
		{errors.New("surprise"), connect.CodeInternal},
	} {
		if got := connect.CodeOf(Wire(c.err)); got != c.want {
			t.Errorf("Wire(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if Wire(nil) != nil {
		t.Error("Wire(nil) is not nil")
	}
}

// TestShorten: a huge input quoted in an error comes back cut, and the
// advice around it survives.
func TestShorten(t *testing.T) {
	huge := strings.Repeat("x", 50<<20)
	err := Wire(model.Invalidf("vpc name %q is too long; use at most 63 characters", huge))
	msg := err.(*connect.Error).Message()
	if len(msg) > 300 || !strings.HasSuffix(msg, "is too long; use at most 63 characters") || !strings.Contains(msg, fmt.Sprint(len(huge)+2, " bytes")) {
		t.Errorf("message of %d bytes: %.300q", len(msg), msg)
	}
	err = Wire(connect.NewError(connect.CodeNotFound, errors.New(strings.Repeat("a ", 10000))))
	if m := err.(*connect.Error).Message(); len(m) > maxMessage+10 || connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("connect error of %d bytes, code %v", len(m), connect.CodeOf(err))
	}
	if s := "short message stays"; Shorten(s) != s {
		t.Errorf("Shorten(%q) = %q", s, Shorten(s))
	}
	if s := Shorten(strings.Repeat("é", 100)); !strings.HasPrefix(s, strings.Repeat("é", 40)+"…") {
		t.Errorf("UTF-8 cut badly: %q", s)
	}
}
