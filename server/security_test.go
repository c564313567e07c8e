package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracedb/tracedb/db"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tracedb test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "tracedb test"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	pemOf := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	keyPEM := func(k *ecdsa.PrivateKey) string {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf("PRIVATE KEY", b)
	}
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth)
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth)
	p := &testPKI{
		caFile:   writeFile(t, "ca.pem", pemOf("CERTIFICATE", caDER)),
		certFile: writeFile(t, "server.pem", pemOf("CERTIFICATE", srvDER)),
		keyFile:  writeFile(t, "server-key.pem", keyPEM(srvKey)),
		pool:     x509.NewCertPool(),
	}
	p.pool.AddCert(ca)
	p.client, err = tls.X509KeyPair([]byte(pemOf("CERTIFICATE", cliDER)), []byte(keyPEM(cliKey)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	for _, mutual := range []bool{false, true} {
		name := "tls"
		if mutual {
			name = "mtls"
		}
		t.Run(name, func(t *testing.T) {
			client := &tls.Config{RootCAs: pki.pool}
			if mutual {
				client.Certificates = []tls.Certificate{pki.client}
			}
			ts := startServer(t, serverSetup{client: client, cfg: func(c *Config) {
				c.TLS = TLS{CertFile: pki.certFile, KeyFile: pki.keyFile}
				if mutual {
					c.TLS.ClientCAFile = pki.caFile
				}
			}})
			spans, id := sdkSpans(3, "tls")
			if err := ts.grpcExporter(ListenerStorage, nil).ExportSpans(context.Background(), spans); err != nil {
				t.Fatalf("grpc export over TLS: %v", err)
			}
			if err := ts.httpExporter(nil).ExportSpans(context.Background(), spans); err != nil {
				t.Fatalf("http export over TLS: %v", err)
			}
			// Two exports of the same spans: exact duplicates are read once.
			if n := len(traceSpans(t, ts.store, db.DefaultTenant, id)); n != 3 {
				t.Fatalf("read back %d spans, want 3", n)
			}
			resp, err := ts.httpClient().Get(ts.url(ListenerAdmin, "/healthz"))
			if err != nil {
				t.Fatalf("admin over TLS: %v", err)
			}
			resp.Body.Close()

			// Refused: plain text, an unknown CA, TLS 1.1, and under mTLS no client certificate.
			plain := &http.Client{Timeout: 5 * time.Second}
			if resp, err := plain.Get("http://" + ts.addr(ListenerAdmin) + "/healthz"); err == nil && resp.StatusCode == 200 {
				t.Error("plain HTTP was served on a TLS listener")
			}
			for what, cfg := range map[string]*tls.Config{
				"unknown CA": {Certificates: client.Certificates},
				"TLS 1.1":    {RootCAs: pki.pool, Certificates: client.Certificates, MaxVersion: tls.VersionTLS11},
			} {
				c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
				if _, err := c.Get(ts.url(ListenerOTLPHTTP, otlpTracesPath)); err == nil {
					t.Errorf("%s: handshake succeeded", what)
				}
			}
			if mutual {
				noCert := &testServer{t: t, srv: ts.srv, client: &tls.Config{RootCAs: pki.pool}}
				err := noCert.grpcExporter(ListenerOTLPGRPC, nil).ExportSpans(context.Background(), spans)
				if err == nil {
					t.Error("grpc export without a client certificate succeeded under mTLS")
				}
				c := noCert.httpClient()
				if resp, err := c.Get(noCert.url(ListenerAdmin, "/healthz")); err == nil {
					resp.Body.Close()
					t.Error("HTTP without a client certificate succeeded under mTLS")
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tokens := writeFile(t, "tokens", "# tokens\n\nsecret-one\n  secret-two  \n")
	ts := startServer(t, serverSetup{cfg: func(c *Config) { c.Auth.TokenFile = tokens }})
	spans, id := sdkSpans(2, "auth")

	for _, tc := range []struct {
		name string
		h    header
		ok   bool
	}{
		{"no token", nil, false},
		{"wrong token", header{"authorization": "Bearer secret-three"}, false},
		{"prefix of a token", header{"authorization": "Bearer secret"}, false},
		{"basic scheme", header{"authorization": "Basic c2VjcmV0LW9uZQ=="}, false},
		{"first token", header{"authorization": "Bearer secret-one"}, true},
		{"second token", header{"authorization": "bearer secret-two"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, id := range []ListenerID{ListenerStorage, ListenerOTLPGRPC} {
				err := ts.grpcExporter(id, tc.h).ExportSpans(context.Background(), spans)
				if tc.ok && err != nil {
					t.Errorf("grpc %s: %v", id, err)
				}
				if !tc.ok && status.Code(err) != codes.Unauthenticated {
					t.Errorf("grpc %s: err = %v, want Unauthenticated", id, err)
				}
			}
			h := header{"Content-Type": mediaProtobuf}
			for k, v := range tc.h {
				h[k] = v
			}
			body, _ := ptraceotlp.NewExportRequest().MarshalProto()
			resp := ts.post(body, h)
			if want := map[bool]int{true: 200, false: 401}[tc.ok]; resp.StatusCode != want {
				t.Errorf("http: status %d, want %d", resp.StatusCode, want)
			}
			if !tc.ok && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("http 401 without a WWW-Authenticate: Bearer challenge")
			}
			req, _ := http.NewRequest(http.MethodGet, ts.url(ListenerAdmin, "/metrics"), nil)
			for k, v := range tc.h {
				req.Header.Set(k, v)
			}
			mresp, err := ts.httpClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := readAll(t, mresp.Body)
			mresp.Body.Close()
			if want := map[bool]int{true: 200, false: 401}[tc.ok]; mresp.StatusCode != want {
				t.Errorf("/metrics: status %d, want %d", mresp.StatusCode, want)
			}
			if tc.ok {
				for _, m := range []string{"tracedb_server_spans_accepted_total", "tracedb_spans_accepted_total", "tracedb_server_request_duration_seconds", "tracedb_server_ingest_inflight_bytes"} {
					if !strings.Contains(string(b), m) {
						t.Errorf("/metrics lacks %s", m)
					}
				}
			}
		})
	}
	if n := len(traceSpans(t, ts.store, db.DefaultTenant, id)); n != 2 {
		t.Fatalf("read back %d spans, want 2", n)
	}

	t.Run("health without token", func(t *testing.T) {
		for _, id := range []ListenerID{ListenerStorage, ListenerOTLPGRPC} {
			hc := healthpb.NewHealthClient(ts.grpcConn(id))
			for _, svc := range []string{"", otlpTraceService} {
				resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
				if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("%s health %q: %v %v", id, svc, resp, err)
				}
			}
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := ts.httpClient().Get(ts.url(ListenerAdmin, path))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: status %d", path, resp.StatusCode)
			}
		}
	})
	t.Run("storage services report health", func(t *testing.T) {
		hc := healthpb.NewHealthClient(ts.grpcConn(ListenerStorage))
		for name := range ts.srv.grpcServers[ListenerStorage].GetServiceInfo() {
			if name == healthpb.Health_ServiceDesc.ServiceName {
				continue
			}
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
			if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health %q: %v %v", name, resp, err)
			}
		}
	})
}

func TestTenants(t *testing.T) {
	ts := startServer(t, serverSetup{cfg: func(c *Config) {
		c.Tenancy = Tenancy{Enabled: true, Tenants: []string{"team-a", "team-b"}}
	}})
	spansA, idA := sdkSpans(4, "a")
	spansB, idB := sdkSpans(3, "b")
	if err := ts.grpcExporter(ListenerOTLPGRPC, header{"x-tenant": "team-a"}).ExportSpans(context.Background(), spansA); err != nil {
		t.Fatal(err)
	}
	if err := ts.httpExporter(header{"x-tenant": "team-b"}).ExportSpans(context.Background(), spansB); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tenant string
		id     [16]byte
		want   int
	}{
		{"team-a", idA, 4}, {"team-b", idA, 0}, {"default", idA, 0},
		{"team-b", idB, 3}, {"team-a", idB, 0},
	} {
		if n := len(traceSpans(t, ts.store, tc.tenant, tc.id)); n != tc.want {
			t.Errorf("tenant %s sees %d spans of trace %x, want %d", tc.tenant, n, tc.id, tc.want)
		}
	}
	for _, tc := range []struct {
		name   string
		h      header
		code   codes.Code
		status int
	}{
		{"missing", nil, codes.Unauthenticated, 401},
		{"unknown", header{"x-tenant": "team-c"}, codes.PermissionDenied, 403},
		{"malformed", header{"x-tenant": "team a/b"}, codes.InvalidArgument, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ts.grpcExporter(ListenerStorage, tc.h).ExportSpans(context.Background(), spansA)
			if status.Code(err) != tc.code {
				t.Errorf("grpc: err = %v, want %s", err, tc.code)
			}
			h := header{"Content-Type": mediaProtobuf}
			for k, v := range tc.h {
				h[k] = v
			}
			body, _ := ptraceotlp.NewExportRequest().MarshalProto()
			if resp := ts.post(body, h); resp.StatusCode != tc.status {
				t.Errorf("http: status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	// Storage reads carry the tenant too: a stream RPC without one is refused.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "team-z")
	hc := healthpb.NewHealthClient(ts.grpcConn(ListenerStorage))
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health with an unknown tenant header: %v (health ignores tenants)", err)
	}
}
