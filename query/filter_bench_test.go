package query

import (
	"math/rand/v2"
	"testing"

	"github.com/tracedb/tracedb/internal/spangen"
)

// benchFilters are filters of the shapes a search sends, over the Mix
// workload.
var benchFilters = []struct{ name, text string }{
	{"service", `service = "cart"`},
	{"service+name+status", `service = "frontend" and span.name = "GET /api/cart" and span.status != "error"`},
	{"int-attr", `span.attr["rpc.grpc.status_code"] >= 0`},
	{"untyped-attr", `attr["http.response.status_code"] = any("200")`},
	{"duration-range", `span.duration >= 10ms and span.duration < 1s`},
	{"regex", `span.name =~ "(GET|POST) /api/(cart|checkout)"`},
	{"some-event", `some(events, event.name = "exception" and event.attr["exception.type"] = "Error")`},
	{"or-not", `(span.kind = "server" or span.kind = "consumer") and not resource.attr["deployment.environment"] = "staging"`},
	{"traceID", `span.traceID =~ "00"`},
	{"phrase-statement", `phrase(span.attr["db.statement"], ["from", "products"])`},
	{"fulltext-stacktrace", `fulltext(event.attr["exception.stacktrace"], ["charge", "server"])`},
}

// BenchmarkFilterMatch measures Match per span over 4096 Mix spans.
func BenchmarkFilterMatch(b *testing.B) {
	spans := spangen.Spans(spangen.NewMix(rand.New(rand.NewPCG(1, 1))), 4096)
	for _, bf := range benchFilters {
		b.Run(bf.name, func(b *testing.B) {
			e, err := ParseFilter(bf.text)
			if err != nil {
				b.Fatal(err)
			}
			f, _ := Compile(e)
			matched := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if f.Match(spans[i%len(spans)]) {
					matched++
				}
			}
			b.ReportMetric(float64(matched)/float64(b.N), "match/op")
		})
	}
}

func BenchmarkParseFilter(b *testing.B) {
	const text = `service = "cart" and span.attr["http.status_code"] >= 500 and some(events, name = "exception") and span.duration in [1s, 2s]`
	b.ReportAllocs()
	for range b.N {
		if _, err := ParseFilter(text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileFilter(b *testing.B) {
	e, err := ParseFilter(`service = "cart" and span.attr["http.status_code"] >= 500 and some(events, name = "exception") and span.name =~ "GET"`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for range b.N {
		if _, err := Compile(e); err != nil {
			b.Fatal(err)
		}
	}
}
