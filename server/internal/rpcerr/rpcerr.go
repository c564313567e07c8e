// Package rpcerr maps the errors of the store and the query engine to gRPC
// statuses, one way for every gRPC service tracedb serves (the Jaeger
// storage API, the analytics API): a caller's mistake (a malformed
// request, query.ErrInvalidQuery, query.ErrInvalidFilter, an invalid
// tenant) is InvalidArgument with a message that says what is wrong; the
// context's cancellation or deadline is Canceled or DeadlineExceeded; a
// closed store is Unavailable (the server is going away: retry elsewhere or
// later); anything else is Internal.
package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/query"
)

// Invalidf returns an InvalidArgument status with a formatted message.
func Invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// Status maps err to a gRPC status error; nil stays nil and a status
// error passes through.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, query.ErrInvalidQuery), errors.Is(err, query.ErrInvalidFilter), errors.Is(err, db.ErrInvalidTenant):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, db.ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
