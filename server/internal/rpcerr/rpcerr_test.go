package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
	"github.com/tracedb/tracedb/query"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{nil, codes.OK},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", query.ErrInvalidQuery), codes.InvalidArgument},
		{&query.FilterError{Msg: "m"}, codes.InvalidArgument},
		{fmt.Errorf("x: %w", db.ErrInvalidTenant), codes.InvalidArgument},
		{fmt.Errorf("x: %w", db.ErrClosed), codes.Unavailable},
		{status.Error(codes.NotFound, "kept"), codes.NotFound},
		{errors.New("disk on fire"), codes.Internal},
	} {
		if got := status.Code(Status(tc.err)); got != tc.code {
			t.Errorf("Status(%v) = %s, want %s", tc.err, got, tc.code)
		}
	}
	if got := status.Code(Invalidf("bad %d", 1)); got != codes.InvalidArgument {
		t.Errorf("Invalidf: %s", got)
	}
}
