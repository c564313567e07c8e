package server

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		check   func(t *testing.T, c Config)
		wantErr string // from ParseConfig or Validate
	}{
		{name: "empty is the defaults", yaml: "", check: func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c, DefaultConfig()) {
				t.Errorf("got %+v, want the defaults", c)
			}
			if c.Listen.Storage != "127.0.0.1:17271" || c.Listen.Admin != "127.0.0.1:17270" || c.Listen.OTLPGRPC != "127.0.0.1:4317" || c.Listen.OTLPHTTP != "127.0.0.1:4318" || c.DataDir != "./tracedb-data" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "everything", yaml: `
data_dir: /var/lib/tracedb
listen: {storage: "0.0.0.0:17271", admin: "off", otlp_grpc: ":4317", otlp_http: "off"}
tls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem}
auth: {token_file: tokens}
tenancy: {enabled: true, header: x-org, tenants: [a, b]}
limits: {max_message_bytes: 1048576, max_spans_per_request: 500, ingest_queue_bytes: 8388608, write_timeout: 250ms}
admin: {pprof: true}
shutdown_timeout: 3s
`, check: func(t *testing.T, c Config) {
			if c.DataDir != "/var/lib/tracedb" || c.Listen.Admin != Off || c.Listen.OTLPGRPC != ":4317" || !c.TLS.Enabled() ||
				c.Tenancy.Header != "x-org" || len(c.Tenancy.Tenants) != 2 || c.Limits.WriteTimeout != 250*time.Millisecond ||
				c.Limits.IngestQueueBytes != 8<<20 || !c.Admin.Pprof || c.ShutdownTimeout != 3*time.Second {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "retention", yaml: "retention: {ttl: 72h, tenant_ttl: {audit: 720h}, disk_budget_bytes: 1073741824, interval: 30s}\n", check: func(t *testing.T, c Config) {
			p, err := c.Retention.Policy()
			if err != nil {
				t.Fatal(err)
			}
			if p.TTL != 72*time.Hour || p.TenantTTL["audit"] != 720*time.Hour || p.DiskBudget != 1<<30 || c.Retention.Interval != 30*time.Second {
				t.Errorf("got %+v", c.Retention)
			}
		}},
		{name: "negative ttl", yaml: "retention: {ttl: -1h}\n", wantErr: "negative"},
		{name: "storage", yaml: "storage: {max_head_spans: 65536, row_group_cache_bytes: -1, row_group_spans: 2048}\n", check: func(t *testing.T, c Config) {
			if c.Storage.MaxHeadSpans != 65536 || c.Storage.RowGroupCacheBytes != -1 || c.Storage.RowGroupSpans != 2048 {
				t.Errorf("got %+v", c.Storage)
			}
		}},
		{name: "negative head", yaml: "storage: {max_head_spans: -5}\n", wantErr: "storage.max_head_spans"},
		{name: "negative row group", yaml: "storage: {row_group_spans: -5}\n", wantErr: "storage.row_group_spans"},
		{name: "keep", yaml: "retention: {ttl: 24h, keep: {errors: true, slower_than: 2s, filter: 'span.name = \"checkout\"', ttl: 720h}}\n", check: func(t *testing.T, c Config) {
			p, err := c.Retention.Policy()
			if err != nil {
				t.Fatal(err)
			}
			if !p.Keep.Errors || p.Keep.SlowerThan != 2*time.Second || p.Keep.TTL != 720*time.Hour || p.Keep.Match == nil {
				t.Errorf("got %+v", p.Keep)
			}
		}},
		{name: "bad keep filter", yaml: "retention: {keep: {filter: 'span.name ='}}\n", wantErr: "retention.keep.filter"},
		{name: "keep ttl too short", yaml: "retention: {ttl: 24h, keep: {errors: true, ttl: 1h}}\n", wantErr: "not longer"},
		{name: "bad tenant ttl", yaml: "retention: {tenant_ttl: {\"a b\": 1h}}\n", wantErr: "retention.tenant_ttl"},
		{name: "unknown key", yaml: "listen: {otlp: x}\n", wantErr: "field otlp not found"},
		{name: "bad address", yaml: "listen: {admin: nope}\n", wantErr: "listen.admin"},
		{name: "key without cert", yaml: "tls: {key_file: k.pem}\n", wantErr: "go together"},
		{name: "client CA without TLS", yaml: "tls: {client_ca_file: ca.pem}\n", wantErr: "client_ca_file"},
		{name: "tenants without tenancy", yaml: "tenancy: {tenants: [a]}\n", wantErr: "needs tenancy.enabled"},
		{name: "bad tenant", yaml: "tenancy: {enabled: true, tenants: [a b]}\n", wantErr: "invalid tenant"},
		{name: "budget below message", yaml: "limits: {max_message_bytes: 100, ingest_queue_bytes: 99}\n", wantErr: "could never fit"},
		{name: "bad duration", yaml: "limits: {write_timeout: soon}\n", wantErr: "time.Duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
