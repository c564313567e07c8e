package spangen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/tracedb/tracedb/encoding"
)

// Mix generates a realistic microservice workload, modelled on an online
// shop of 8 services:
//
//   - each trace enters at the frontend through one of 12 HTTP routes,
//     chosen with a skewed (Zipf) distribution; each route calls a few
//     services over gRPC (a client span in the caller, a server span in
//     the callee), which query PostgreSQL (long SQL statements with
//     literals), Redis, or publish to Kafka (a consumer span linked to the
//     producer span); traces have 3 to about 60 spans;
//   - resources per service and pod (3 pods each), with Kubernetes and SDK
//     attributes; a scope per instrumentation library;
//   - HTTP, RPC and database semantic-convention attributes, and
//     high-cardinality ones: user IDs (100,000), request IDs (one per
//     trace), client addresses, product IDs;
//   - about 2% of traces fail somewhere: error status with a message, an
//     "exception" event with type, message and a stack trace, HTTP 500 up
//     the call chain; about 1% have a slow outlier 20 to 100 times slower;
//   - log-normal durations around each operation's typical latency,
//     nanosecond precision; traces start on average 2 ms apart.
type Mix struct {
	r         *rand.Rand
	now       uint64
	routes    *rand.Zipf
	resources map[string][]*encoding.Resource
	scopes    map[string]*encoding.Scope
}

// NewMix returns a generator drawing from r.
func NewMix(r *rand.Rand) *Mix {
	g := &Mix{
		r:         r,
		now:       Epoch,
		routes:    rand.NewZipf(r, 1.3, 1, uint64(len(mixRoutes)-1)),
		resources: map[string][]*encoding.Resource{},
		scopes:    map[string]*encoding.Scope{},
	}
	for _, svc := range mixServices {
		for range 3 {
			podName := fmt.Sprintf("%s-%x-%05x", svc.name, 0x5f7c9d00+len(svc.name), r.Uint32N(1<<20))
			g.resources[svc.name] = append(g.resources[svc.name], &encoding.Resource{
				SchemaURL: "https://opentelemetry.io/schemas/1.26.0",
				Attrs: []encoding.KeyValue{
					encoding.StrKV("service.name", svc.name),
					encoding.StrKV("service.namespace", "shop"),
					encoding.StrKV("service.version", svc.version),
					encoding.StrKV("deployment.environment", "production"),
					encoding.StrKV("host.name", podName),
					encoding.StrKV("k8s.pod.name", podName),
					encoding.StrKV("k8s.namespace.name", "shop"),
					encoding.StrKV("k8s.node.name", fmt.Sprintf("node-%d", r.IntN(6))),
					encoding.StrKV("telemetry.sdk.language", svc.lang),
					encoding.StrKV("telemetry.sdk.name", "opentelemetry"),
					encoding.StrKV("telemetry.sdk.version", "1.28.0"),
					encoding.IntKV("process.pid", int64(1+r.IntN(30000))),
				},
			})
		}
	}
	for _, lib := range []string{"otelhttp", "otelgrpc", "otelsql", "redisotel", "otelkafka", "app"} {
		g.scopes[lib] = &encoding.Scope{
			Name:    "go.opentelemetry.io/contrib/instrumentation/" + lib,
			Version: "0.53.0",
		}
	}
	return g
}

type mixService struct{ name, version, lang string }

var mixServices = []mixService{
	{"frontend", "2.4.1", "nodejs"},
	{"cart", "1.9.0", "dotnet"},
	{"checkout", "3.1.7", "go"},
	{"payment", "1.2.0", "nodejs"},
	{"product-catalog", "4.0.2", "go"},
	{"recommendation", "0.9.5", "python"},
	{"shipping", "1.5.3", "rust"},
	{"currency", "2.0.0", "cpp"},
}

type mixCall struct {
	svc, rpc string
	latency  float64 // typical latency of the server side in ns
}

type mixRoute struct {
	method, route string
	calls         []mixCall
}

var mixRoutes = []mixRoute{
	{"GET", "/api/products/{id}", []mixCall{{"product-catalog", "GetProduct", 2e6}, {"currency", "Convert", 3e5}}},
	{"GET", "/api/products", []mixCall{{"product-catalog", "ListProducts", 8e6}, {"currency", "Convert", 3e5}}},
	{"GET", "/api/recommendations", []mixCall{{"recommendation", "ListRecommendations", 12e6}}},
	{"GET", "/api/cart", []mixCall{{"cart", "GetCart", 1e6}, {"product-catalog", "GetProduct", 2e6}}},
	{"POST", "/api/cart", []mixCall{{"cart", "AddItem", 2e6}}},
	{"GET", "/api/currency", []mixCall{{"currency", "GetSupportedCurrencies", 2e5}}},
	{"POST", "/api/checkout", []mixCall{{"checkout", "PlaceOrder", 40e6}}},
	{"GET", "/api/shipping", []mixCall{{"shipping", "GetQuote", 4e6}}},
	{"GET", "/api/data", []mixCall{{"product-catalog", "SearchProducts", 15e6}}},
	{"DELETE", "/api/cart", []mixCall{{"cart", "EmptyCart", 1e6}}},
	{"GET", "/", nil},
	{"GET", "/healthz", nil},
}

var userAgents = func() []string {
	var out []string
	for _, os := range []string{"Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64", "iPhone; CPU iPhone OS 17_5 like Mac OS X"} {
		for _, v := range []int{120, 121, 122, 123, 124} {
			out = append(out, fmt.Sprintf("Mozilla/5.0 (%s) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36", os, v))
		}
	}
	return out
}()

// trace is one trace under construction.
type mixTrace struct {
	g      *Mix
	tid    encoding.TraceID
	spans  []*encoding.Span
	failAt int // index of the call that fails, or -1
	slowAt int // index of the span that is a slow outlier, or -1
	calls  int
	user   string
}

// Trace returns the next trace.
func (g *Mix) Trace() []*encoding.Span {
	r := g.r
	g.now += uint64(r.ExpFloat64() * 2e6)
	t := &mixTrace{g: g, tid: traceID(r), failAt: -1, slowAt: -1,
		user: fmt.Sprintf("user-%08x", r.Uint32N(100_000)*2654435761)}
	if r.IntN(50) == 0 {
		t.failAt = r.IntN(4)
	}
	if r.IntN(100) == 0 {
		t.slowAt = 1 + r.IntN(6)
	}
	rt := mixRoutes[g.routes.Uint64()]
	root := t.span(nil, "frontend", "otelhttp", rt.method+" "+rt.route, encoding.KindServer, g.now)
	path := strings.ReplaceAll(rt.route, "{id}", productID(r))
	status := int64(200)
	root.Attrs = []encoding.KeyValue{
		encoding.StrKV("http.request.method", rt.method),
		encoding.StrKV("http.route", rt.route),
		encoding.StrKV("url.path", path),
		encoding.StrKV("url.scheme", "https"),
		encoding.StrKV("server.address", "shop.example.com"),
		encoding.IntKV("server.port", 443),
		encoding.StrKV("client.address", fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 1+r.IntN(254))),
		encoding.StrKV("user_agent.original", userAgents[r.IntN(len(userAgents))]),
		encoding.StrKV("network.protocol.version", "1.1"),
		encoding.StrKV("app.user.id", t.user),
		encoding.StrKV("app.request.id", uuid(r)),
	}
	end := root.StartUnixNano + uint64(200e3*math.Exp(r.NormFloat64()*0.3))
	for _, c := range rt.calls {
		cs, ok := t.call(root, "frontend", c, end)
		end = max(end, cs.EndUnixNano)
		if !ok {
			status = 500
		}
	}
	root.EndUnixNano = end + uint64(r.Int64N(100e3))
	root.Attrs = append(root.Attrs, encoding.IntKV("http.response.status_code", status))
	if status >= 500 {
		root.StatusCode = encoding.StatusError
	}
	return t.spans
}

// span starts a span of service svc.
func (t *mixTrace) span(parent *encoding.Span, svc, lib, name string, kind int32, start uint64) *encoding.Span {
	r := t.g.r
	pods := t.g.resources[svc]
	s := &encoding.Span{
		TraceID:       t.tid,
		SpanID:        spanID(r),
		Flags:         0x101,
		Name:          name,
		Kind:          kind,
		StartUnixNano: start,
		Resource:      pods[r.IntN(len(pods))],
		Scope:         t.g.scopes[lib],
	}
	if parent != nil {
		s.ParentSpanID = parent.SpanID
		if parent.Resource != s.Resource {
			s.Flags = 0x301 // the parent is remote
		}
	}
	t.spans = append(t.spans, s)
	return s
}

// latency returns a log-normal duration around typical, or a slow outlier.
func (t *mixTrace) latency(typical float64) uint64 {
	d := typical * math.Exp(t.g.r.NormFloat64()*0.5)
	if len(t.spans) == t.slowAt {
		d *= 20 + t.g.r.Float64()*80
	}
	return uint64(d)
}

// call makes a gRPC call from caller (under parent) to c, starting no
// earlier than after, and returns the client span and whether it
// succeeded.
func (t *mixTrace) call(parent *encoding.Span, caller string, c mixCall, after uint64) (*encoding.Span, bool) {
	r := t.g.r
	n := t.calls
	t.calls++
	fail := n == t.failAt
	svcName := "oteldemo." + camel(c.svc) + "Service"
	start := after + uint64(r.Int64N(50e3))
	cl := t.span(parent, caller, "otelgrpc", svcName+"/"+c.rpc, encoding.KindClient, start)
	rpcAttrs := func(code int64) []encoding.KeyValue {
		return []encoding.KeyValue{
			encoding.StrKV("rpc.system", "grpc"),
			encoding.StrKV("rpc.service", svcName),
			encoding.StrKV("rpc.method", c.rpc),
			encoding.StrKV("server.address", c.svc),
			encoding.IntKV("server.port", 8080),
			encoding.IntKV("rpc.grpc.status_code", code),
		}
	}
	srvStart := start + uint64(100e3+r.Int64N(200e3))
	srv := t.span(cl, c.svc, "otelgrpc", svcName+"/"+c.rpc, encoding.KindServer, srvStart)
	end := srvStart + t.latency(c.latency)/4
	// The server's own work: storage, nested calls, messaging.
	switch c.svc {
	case "product-catalog", "shipping", "payment":
		for range 1 + r.IntN(3) {
			end = t.sql(srv, c.svc, end)
		}
	case "cart":
		for range 1 + r.IntN(4) {
			end = t.redis(srv, c.svc, end)
		}
	case "recommendation":
		cs, _ := t.call(srv, c.svc, mixCall{"product-catalog", "ListProducts", 6e6}, end)
		end = cs.EndUnixNano
		for range r.IntN(8) {
			cs, _ := t.call(srv, c.svc, mixCall{"product-catalog", "GetProduct", 2e6}, end)
			end = cs.EndUnixNano
		}
	case "checkout":
		for _, sub := range []mixCall{{"cart", "GetCart", 1e6}, {"currency", "Convert", 3e5}, {"shipping", "GetQuote", 4e6}, {"payment", "Charge", 30e6}, {"shipping", "ShipOrder", 5e6}, {"cart", "EmptyCart", 1e6}} {
			cs, ok := t.call(srv, c.svc, sub, end)
			end = cs.EndUnixNano
			if !ok {
				fail = true
				break
			}
		}
		if !fail {
			end = t.kafka(srv, end)
		}
	}
	srv.EndUnixNano = end + t.latency(c.latency)/4
	cl.EndUnixNano = srv.EndUnixNano + uint64(50e3+r.Int64N(150e3))
	code := int64(0)
	if fail {
		code = 14
		t.fail(srv, "rpc error: code = Unavailable desc = connection refused")
		cl.StatusCode = encoding.StatusError
		cl.StatusMessage = "14 UNAVAILABLE: connection refused"
	}
	cl.Attrs = rpcAttrs(code)
	srv.Attrs = append(rpcAttrs(code), encoding.StrKV("app.user.id", t.user))
	return cl, !fail
}

// fail marks s as failed with an exception event.
func (t *mixTrace) fail(s *encoding.Span, msg string) {
	r := t.g.r
	s.StatusCode = encoding.StatusError
	s.StatusMessage = msg
	var st strings.Builder
	fmt.Fprintf(&st, "Error: %s\n", msg)
	for i := range 8 + r.IntN(12) {
		fmt.Fprintf(&st, "    at %s (/app/src/%s.js:%d:%d)\n", []string{"processTicksAndRejections", "Object.charge", "Server.handle", "Client.call"}[i%4], []string{"index", "charge", "server", "client"}[r.IntN(4)], 1+r.IntN(400), 1+r.IntN(80))
	}
	s.Events = append(s.Events, encoding.Event{
		TimeUnixNano: s.StartUnixNano + uint64(r.Int64N(1e6)),
		Name:         "exception",
		Attrs: []encoding.KeyValue{
			encoding.StrKV("exception.type", "Error"),
			encoding.StrKV("exception.message", msg),
			encoding.StrKV("exception.stacktrace", st.String()),
			encoding.BoolKV("exception.escaped", true),
		},
	})
}

var sqlTables = []string{"products", "product_prices", "inventory", "shipments", "payments", "addresses"}

// sql adds a PostgreSQL query span under parent starting after, and returns
// its end.
func (t *mixTrace) sql(parent *encoding.Span, svc string, after uint64) uint64 {
	r := t.g.r
	table := sqlTables[r.IntN(len(sqlTables))]
	op := "SELECT"
	var stmt string
	switch r.IntN(4) {
	case 0:
		op = "UPDATE"
		stmt = fmt.Sprintf("UPDATE %s SET quantity = quantity - %d, updated_at = now() WHERE product_id = '%s' AND warehouse_id = %d RETURNING quantity", table, 1+r.IntN(5), productID(r), r.IntN(40))
	default:
		stmt = fmt.Sprintf("SELECT p.id, p.name, p.description, p.picture, p.price_currency_code, p.price_units, p.price_nanos, p.categories FROM %s p LEFT JOIN inventory i ON i.product_id = p.id WHERE p.id = '%s' AND i.warehouse_id IN (%d, %d, %d) AND p.deleted_at IS NULL ORDER BY p.updated_at DESC LIMIT %d", table, productID(r), r.IntN(40), r.IntN(40), r.IntN(40), 1+r.IntN(50))
	}
	start := after + uint64(r.Int64N(100e3))
	s := t.span(parent, svc, "otelsql", op+" "+table, encoding.KindClient, start)
	s.EndUnixNano = start + t.latency(800e3)
	s.Attrs = []encoding.KeyValue{
		encoding.StrKV("db.system", "postgresql"),
		encoding.StrKV("db.name", "shop"),
		encoding.StrKV("db.user", svc),
		encoding.StrKV("db.operation", op),
		encoding.StrKV("db.sql.table", table),
		encoding.StrKV("db.statement", stmt),
		encoding.StrKV("server.address", "postgres.shop.svc.cluster.local"),
		encoding.IntKV("server.port", 5432),
	}
	if op == "SELECT" {
		s.Attrs = append(s.Attrs, encoding.IntKV("db.rows_returned", int64(r.IntN(60))))
	}
	return s.EndUnixNano
}

// redis adds a Redis command span.
func (t *mixTrace) redis(parent *encoding.Span, svc string, after uint64) uint64 {
	r := t.g.r
	cmd := []string{"HGET", "HGETALL", "HSET", "EXPIRE"}[r.IntN(4)]
	start := after + uint64(r.Int64N(30e3))
	s := t.span(parent, svc, "redisotel", cmd, encoding.KindClient, start)
	s.EndUnixNano = start + t.latency(150e3)
	s.Attrs = []encoding.KeyValue{
		encoding.StrKV("db.system", "redis"),
		encoding.StrKV("db.operation", cmd),
		encoding.StrKV("db.statement", cmd+" cart:"+t.user),
		encoding.IntKV("db.redis.database_index", 0),
		encoding.StrKV("server.address", "redis-cart"),
		encoding.IntKV("server.port", 6379),
	}
	if cmd == "HGET" && r.IntN(5) == 0 {
		s.Events = append(s.Events, encoding.Event{TimeUnixNano: s.EndUnixNano - 1000, Name: "cache miss",
			Attrs: []encoding.KeyValue{encoding.StrKV("cache.key", "cart:"+t.user)}})
	}
	return s.EndUnixNano
}

// kafka adds a producer span under parent and a consumer span in another
// service that links to it.
func (t *mixTrace) kafka(parent *encoding.Span, after uint64) uint64 {
	r := t.g.r
	start := after + uint64(r.Int64N(30e3))
	p := t.span(parent, "checkout", "otelkafka", "orders publish", encoding.KindProducer, start)
	p.EndUnixNano = start + t.latency(400e3)
	msgAttrs := func() []encoding.KeyValue {
		return []encoding.KeyValue{
			encoding.StrKV("messaging.system", "kafka"),
			encoding.StrKV("messaging.destination.name", "orders"),
			encoding.IntKV("messaging.kafka.destination.partition", int64(r.IntN(12))),
		}
	}
	p.Attrs = append(msgAttrs(), encoding.StrKV("messaging.operation", "publish"))
	cStart := p.EndUnixNano + uint64(r.Int64N(20e6))
	c := t.span(p, "shipping", "otelkafka", "orders process", encoding.KindConsumer, cStart)
	c.EndUnixNano = cStart + t.latency(3e6)
	c.Attrs = append(msgAttrs(), encoding.StrKV("messaging.operation", "process"),
		encoding.IntKV("messaging.kafka.message.offset", int64(r.Uint32())))
	c.Links = []encoding.Link{{TraceID: t.tid, SpanID: p.SpanID, Flags: 1,
		Attrs: []encoding.KeyValue{encoding.StrKV("messaging.operation", "publish")}}}
	return p.EndUnixNano
}

func productID(r *rand.Rand) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	// 500 products, picked with skew.
	n := uint32(math.Pow(r.Float64(), 2) * 500)
	var b [10]byte
	for i := range b {
		b[i] = alphabet[n%36]
		n = n*2654435761 + uint32(i)
	}
	return string(b[:])
}

func uuid(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>48&0x3fff|0x8000, b&0xffffffffffff)
}

// camel turns "product-catalog" into "ProductCatalog".
func camel(s string) string {
	var b strings.Builder
	up := true
	for _, c := range []byte(s) {
		switch {
		case c == '-':
			up = true
		case up && 'a' <= c && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
			up = false
		default:
			b.WriteByte(c)
			up = false
		}
	}
	return b.String()
}
