package query

import (
	"context"
	"errors"

	"github.com/tracedb/tracedb/db"
)

// DependencyLink is one edge of the service graph: Parent's spans had
// CallCount child spans in Child, a different service.
type DependencyLink struct {
	Parent, Child string
	CallCount     uint64
}

// GetDependencies returns the service graph of the spans that start in r,
// sorted by parent, then child.
func (e *Engine) GetDependencies(ctx context.Context, r db.TimeRange) ([]DependencyLink, error) {
	return nil, errors.New("get dependencies: not implemented yet")
}
