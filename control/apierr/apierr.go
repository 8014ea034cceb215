// Package apierr turns the control plane's error kinds into API status codes,
// at the API edge and nowhere else.
package apierr

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/model"
)

// Wire converts an internal error to a connect error with the proper code.
// This is the only place where error kinds become codes: the Interceptor
// calls it for every handler, the authentication middleware for what it
// refuses. Messages are Shorten'ed on the way out.
func Wire(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return shortened(ce)
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, model.ErrInvalid):
		code = connect.CodeInvalidArgument
	case errors.Is(err, model.ErrNotFound):
		code = connect.CodeNotFound
	case errors.Is(err, model.ErrExists):
		code = connect.CodeAlreadyExists
	case errors.Is(err, model.ErrPrecondition):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, model.ErrUnavailable):
		code = connect.CodeUnavailable
	case errors.Is(err, model.ErrDenied):
		code = connect.CodePermissionDenied
	case errors.Is(err, model.ErrUnauthenticated):
		code = connect.CodeUnauthenticated
	case errors.Is(err, model.ErrTimeout):
		code = connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	}
	return connect.NewError(code, errors.New(Shorten(err.Error())))
}
