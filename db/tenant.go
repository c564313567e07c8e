package db

import (
	"context"
	"fmt"

	"github.com/tracedb/tracedb/encoding"
)

// DefaultTenant is the tenant of a call that names none.
const DefaultTenant = "default"

type tenantKey struct{}

// WithTenant returns a context whose reads and writes go to tenant. Tenants
// are fully apart: a read in one never sees another's spans.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantFromContext returns the tenant WithTenant put in ctx, or
// DefaultTenant.
func TenantFromContext(ctx context.Context) string {
	if t, ok := ctx.Value(tenantKey{}).(string); ok && t != "" {
		return t
	}
	return DefaultTenant
}

// ValidateTenant checks that a tenant name is 1 to 255 bytes of ASCII
// letters, digits, '.', '_' and '-'. Names travel in headers and keys, so
// the set is kept small on purpose.
func ValidateTenant(t string) error {
	if len(t) == 0 || len(t) > encoding.MaxTenantLen {
		return fmt.Errorf("%w: %q: want 1 to %d bytes", ErrInvalidTenant, t, encoding.MaxTenantLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: %q: byte %d (%q) is not a letter, digit, '.', '_' or '-'", ErrInvalidTenant, t, i, c)
		}
	}
	return nil
}

func tenantOf(ctx context.Context) (string, error) {
	t := TenantFromContext(ctx)
	if err := ValidateTenant(t); err != nil {
		return "", err
	}
	return t, nil
}
