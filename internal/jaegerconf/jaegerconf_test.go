package jaegerconf

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestYAML: the configuration parses as YAML and carries each setting where
// Jaeger v2 reads it.
func TestYAML(t *testing.T) {
	for _, c := range []Config{
		{OTLPGRPC: "127.0.0.1:1", OTLPHTTP: "127.0.0.1:2", QueryHTTP: "127.0.0.1:3", QueryGRPC: "127.0.0.1:4", Health: "127.0.0.1:5", BadgerDir: "/tmp/b"},
		{OTLPGRPC: "127.0.0.1:1", OTLPHTTP: "127.0.0.1:2", QueryHTTP: "127.0.0.1:3", QueryGRPC: "127.0.0.1:4", Health: "127.0.0.1:5",
			Remote: "127.0.0.1:17271", BatchTimeout: 50 * time.Millisecond, LogLevel: "info"},
	} {
		var doc struct {
			Extensions struct {
				Health struct {
					HTTP struct{ Endpoint string }
				} `yaml:"healthcheckv2"`
				Query struct {
					EnableTracing bool `yaml:"enable_tracing"`
					HTTP          struct{ Endpoint string }
				} `yaml:"jaeger_query"`
				Storage struct {
					Backends map[string]map[string]any
				} `yaml:"jaeger_storage"`
			}
			Receivers struct {
				OTLP struct {
					Protocols struct{ GRPC, HTTP struct{ Endpoint string } }
				} `yaml:"otlp"`
			}
			Processors struct {
				Batch map[string]any
			}
		}
		y := c.YAML()
		if err := yaml.Unmarshal([]byte(y), &doc); err != nil {
			t.Fatalf("%+v: %v\n%s", c, err, y)
		}
		ext := doc.Extensions
		if ext.Health.HTTP.Endpoint != c.Health || ext.Query.HTTP.Endpoint != c.QueryHTTP || ext.Query.EnableTracing ||
			doc.Receivers.OTLP.Protocols.GRPC.Endpoint != c.OTLPGRPC || doc.Receivers.OTLP.Protocols.HTTP.Endpoint != c.OTLPHTTP {
			t.Errorf("%+v: endpoints or self-tracing wrong:\n%s", c, y)
		}
		store := ext.Storage.Backends["store"]
		if _, badger := store["badger"]; badger != (c.BadgerDir != "") {
			t.Errorf("%+v: backend %v", c, store)
		}
		if c.Remote != "" && !strings.Contains(y, "endpoint: "+c.Remote) {
			t.Errorf("%+v: remote endpoint missing:\n%s", c, y)
		}
		if c.BatchTimeout > 0 && doc.Processors.Batch["timeout"] != "50ms" {
			t.Errorf("%+v: batch %v", c, doc.Processors.Batch)
		}
	}
}
