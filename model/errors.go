package model

import (
	"errors"
	"fmt"
)

// Error kinds. Code inside the control plane wraps one of these so that the
// API edge, and only the API edge, can turn it into a wire status code.
var (
	ErrInvalid         = errors.New("model: invalid argument")
	ErrNotFound        = errors.New("model: not found")
	ErrExists          = errors.New("model: already exists")
	ErrPrecondition    = errors.New("model: failed precondition")
	ErrUnavailable     = errors.New("model: unavailable")
	ErrDenied          = errors.New("model: permission denied")
	ErrUnauthenticated = errors.New("model: unauthenticated")
	ErrTimeout         = errors.New("model: deadline exceeded")
)

// Error is an error of one kind with a message a user can act on.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func newf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Invalidf reports input the caller must fix.
func Invalidf(format string, args ...any) error { return newf(ErrInvalid, format, args...) }

// NotFoundf reports a resource that does not exist.
func NotFoundf(format string, args ...any) error { return newf(ErrNotFound, format, args...) }

// Existsf reports a create that collides with an existing resource.
func Existsf(format string, args ...any) error { return newf(ErrExists, format, args...) }

// Preconditionf reports a request that is valid but not in the current state.
func Preconditionf(format string, args ...any) error { return newf(ErrPrecondition, format, args...) }

// Unavailablef reports a dependency that cannot be reached now.
func Unavailablef(format string, args ...any) error { return newf(ErrUnavailable, format, args...) }

// Deniedf reports a caller asking for something it may not have.
func Deniedf(format string, args ...any) error { return newf(ErrDenied, format, args...) }

// Unauthenticatedf reports a caller that did not prove who it is.
func Unauthenticatedf(format string, args ...any) error {
	return newf(ErrUnauthenticated, format, args...)
}

// Timeoutf reports a wait that ran out of time.
func Timeoutf(format string, args ...any) error { return newf(ErrTimeout, format, args...) }
