package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
)

// healthServicePrefix is the gRPC health service's method prefix; health
// checks need neither a token nor a tenant, so that probes work unconfigured.
const healthServicePrefix = "/grpc.health.v1.Health/"

// authenticator checks bearer tokens. It keeps the SHA-256 of each token
// and compares digests in constant time, so neither a token's bytes nor
// its length leak through timing.
type authenticator struct {
	digests [][sha256.Size]byte
}

// loadTokens reads a token file: one token per line, blank lines and lines
// starting with '#' skipped. A file without tokens is an error: it would
// lock every client out.
func loadTokens(path string) (*authenticator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load auth tokens: %w", err)
	}
	a := &authenticator{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		a.digests = append(a.digests, sha256.Sum256([]byte(line)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("load auth tokens %s: %w", path, err)
	}
	if len(a.digests) == 0 {
		return nil, fmt.Errorf("load auth tokens %s: no tokens in the file", path)
	}
	return a, nil
}

// check verifies an Authorization header value ("Bearer <token>"). A nil
// authenticator accepts everything.
func (a *authenticator) check(authorization string) *refusal {
	if a == nil {
		return nil
	}
	if authorization == "" {
		return refuse(codes.Unauthenticated, http.StatusUnauthorized, "missing bearer token: send the header \"authorization: Bearer <token>\"")
	}
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return refuse(codes.Unauthenticated, http.StatusUnauthorized, "the authorization header is not a bearer token")
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := 0
	for i := range a.digests { // every digest, so the time does not say which matched
		match |= subtle.ConstantTimeCompare(got[:], a.digests[i][:])
	}
	if match != 1 {
		return refuse(codes.Unauthenticated, http.StatusUnauthorized, "invalid bearer token")
	}
	return nil
}

// tenancy resolves the tenant of a call from its header.
type tenancy struct {
	enabled bool
	header  string          // lower case: gRPC metadata keys are
	allowed map[string]bool // nil: every well-formed tenant
}

func newTenancy(c Tenancy) *tenancy {
	t := &tenancy{enabled: c.Enabled, header: strings.ToLower(c.Header)}
	if len(c.Tenants) > 0 {
		t.allowed = make(map[string]bool, len(c.Tenants))
		for _, name := range c.Tenants {
			t.allowed[name] = true
		}
	}
	return t
}

// resolve returns the tenant named by the header's values: a missing one
// is Unauthenticated (401), a malformed one InvalidArgument (400), one off
// the allow-list PermissionDenied (403). With tenancy off, every call is
// db.DefaultTenant's.
func (t *tenancy) resolve(values []string) (string, *refusal) {
	if !t.enabled {
		return db.DefaultTenant, nil
	}
	switch {
	case len(values) == 0 || values[0] == "":
		return "", refuse(codes.Unauthenticated, http.StatusUnauthorized, "missing tenant: send the %s header", t.header)
	case len(values) > 1:
		return "", refuse(codes.InvalidArgument, http.StatusBadRequest, "%d %s headers: send exactly one", len(values), t.header)
	}
	name := values[0]
	if err := db.ValidateTenant(name); err != nil {
		return "", refuse(codes.InvalidArgument, http.StatusBadRequest, "%s header: %v", t.header, err)
	}
	if t.allowed != nil && !t.allowed[name] {
		return "", refuse(codes.PermissionDenied, http.StatusForbidden, "tenant %q is not allowed on this server", name)
	}
	return name, nil
}

// guardGRPC authenticates a call and puts its tenant into the context.
func (s *Server) guardGRPC(ctx context.Context, method string) (context.Context, error) {
	if strings.HasPrefix(method, healthServicePrefix) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var authz string
	if v := md.Get("authorization"); len(v) > 0 {
		authz = v[0]
	}
	if r := s.auth.check(authz); r != nil {
		return ctx, r
	}
	tenant, r := s.tenants.resolve(md.Get(s.tenants.header))
	if r != nil {
		return ctx, r
	}
	return db.WithTenant(ctx, tenant), nil
}

// unaryInterceptor guards every unary call and times it.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := func() (any, error) {
		ctx, err := s.guardGRPC(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}()
	s.m.requestDuration.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

// streamInterceptor guards every streaming call and times it.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := func() error {
		ctx, err := s.guardGRPC(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, ctxStream{ServerStream: ss, ctx: ctx})
	}()
	s.m.requestDuration.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}

// ctxStream is a server stream with the guarded context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }

// httpRoute wraps an HTTP handler with timing under route and, when
// authenticate is set, the bearer-token check; withTenant also resolves
// the tenant into the request's context.
func (s *Server) httpRoute(route string, authenticate, withTenant bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.m.requestDuration.WithLabelValues(route, fmt.Sprint(sw.status)).Observe(time.Since(start).Seconds())
		}()
		if authenticate {
			if ref := s.auth.check(r.Header.Get("Authorization")); ref != nil {
				sw.Header().Set("WWW-Authenticate", `Bearer realm="tracedb"`)
				writeHTTPError(sw, r, ref)
				return
			}
		}
		if withTenant {
			tenant, ref := s.tenants.resolve(r.Header.Values(s.tenants.header))
			if ref != nil {
				writeHTTPError(sw, r, ref)
				return
			}
			r = r.WithContext(db.WithTenant(r.Context(), tenant))
		}
		h.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status code written, for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
