package index

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tracedb/tracedb/internal/spangen"
)

// realisticBlockSpans is the store's default block size.
const realisticBlockSpans = 262_144

// realisticBlock returns the term lists of a block of n spans of the named
// workload, sorted as the store sorts a block: "clickhouse" (the store's
// size target, tracegen's attributes cycling through keys and values),
// "uniform" (the same shape with attributes drawn at random: no two lists
// alike) or "mix".
func realisticBlock(tb testing.TB, workload string, n int) []termList {
	tb.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var g spangen.Generator
	switch workload {
	case "clickhouse":
		g = spangen.NewClickHouseShape(r, false)
	case "uniform":
		g = spangen.NewClickHouseShape(r, true)
	case "mix":
		g = spangen.NewMix(r)
	default:
		tb.Fatalf("unknown workload %q", workload)
	}
	spans := spangen.Spans(g, n)
	spangen.Sort(spans)
	m := NewMemPostings()
	x := NewTermExtractor(DefaultMaxValueLen)
	var ts []Term
	for i, s := range spans {
		ts = ts[:0]
		x.SpanTerms(s, func(t Term) { ts = append(ts, t) })
		if err := m.AddTerms(uint32(i), ts); err != nil {
			tb.Fatal(err)
		}
	}
	var lists []termList
	_ = m.ForEach(func(t Term, ords []uint32) error {
		lists = append(lists, termList{t, ords})
		return nil
	})
	return lists
}

// log2Binomial returns log2(C(u, k)): the bits that any encoding needs on
// average to tell one k-subset of u ordinals from the others.
func log2Binomial(u, k int) float64 {
	lu, _ := math.Lgamma(float64(u + 1))
	lk, _ := math.Lgamma(float64(k + 1))
	lr, _ := math.Lgamma(float64(u - k + 1))
	return (lu - lk - lr) / math.Ln2
}

// BenchmarkBlockPostings writes and reads the postings of a realistic
// block of the store's default size. write reports bytes per span of the
// dictionary and of the sections, and floor, the bytes per span that the
// lists would take at log2(C(spans, n)) bits each (the least any coding of
// independent lists can average). The lookups read one term's postings
// through a reader without a cache (every lookup loads and decompresses
// its dictionary page and its section) and with a warm one: a rare
// attribute term, a service. open makes a reader.
//
//	go test ./index -run '^$' -bench BlockPostings -benchtime 10x
func BenchmarkBlockPostings(b *testing.B) {
	for _, wl := range []string{"clickhouse", "uniform", "mix"} {
		b.Run(wl, func(b *testing.B) {
			lists := realisticBlock(b, wl, realisticBlockSpans)
			const spans = realisticBlockSpans
			var floor float64
			for _, l := range lists {
				floor += log2Binomial(spans, len(l.ords)) / 8
			}
			write := func() ([]byte, [][]byte) {
				w := NewPostingsWriter(nil)
				for _, l := range lists {
					if err := w.Add(l.t, l.ords); err != nil {
						b.Fatal(err)
					}
				}
				dict, secs, err := w.Finish()
				if err != nil {
					b.Fatal(err)
				}
				return dict, secs
			}
			dict, secs := write()
			b.Run("write", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					write()
				}
				secBytes := 0
				for _, s := range secs {
					secBytes += len(s)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/spans, "ns/span")
				b.ReportMetric(float64(len(dict))/spans, "dict-B/span")
				b.ReportMetric(float64(secBytes)/spans, "sections-B/span")
				b.ReportMetric(floor/spans, "floor-B/span")
				b.ReportMetric(float64(len(secs)), "sections")
			})
			b.Run("open", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := NewPostingsReader(dict, (&sectionStore{secs: secs}).load, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			// The rare term: the attribute term of median cardinality among
			// those stored in sections; the service: the first one.
			var rare []termList
			var service Term
			for _, l := range lists {
				if len(l.ords) > inlineMaxCardinality && strings.HasPrefix(l.t.Name, "a:") {
					rare = append(rare, l)
				}
				if l.t.Name == NameService && service.Name == "" {
					service = l.t
				}
			}
			slices.SortStableFunc(rare, func(x, y termList) int { return len(x.ords) - len(y.ords) })
			for _, tc := range []struct {
				name  string
				term  Term
				cache int
			}{
				{"rare/cold", rare[len(rare)/2].t, -1},
				{"rare/warm", rare[len(rare)/2].t, 0},
				{"service/cold", service, -1},
				{"service/warm", service, 0},
			} {
				b.Run(tc.name, func(b *testing.B) {
					pr, _ := openPostings(b, dict, secs, &PostingsReaderOptions{CacheBytes: tc.cache})
					var card uint64
					b.ReportAllocs()
					for b.Loop() {
						p, err := pr.Postings(tc.term)
						if err != nil {
							b.Fatal(err)
						}
						if card, err = Cardinality(p); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(card), "ordinals")
				})
			}
		})
	}
}
