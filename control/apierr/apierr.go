// Package apierr turns the control plane's error kinds into API status codes,
// at the API edge and nowhere else.
package apierr

import (
	"errors"

	"connectrpc.com/connect"

	"github.com/openvpc/openvpc/model"
)

// Wire converts an internal error to a connect error with the proper code.
// This is the only place where error kinds become codes.
func Wire(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
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
	}
	return connect.NewError(code, errors.New(err.Error()))
}
