package index

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/tracedb/tracedb/encoding"
)

// update regenerates the golden files and the fuzz seed corpora:
// go test ./index -run 'Golden|Seed' -update
var update = flag.Bool("update", false, "rewrite testdata golden files and fuzz seeds")

type termList struct {
	t    Term
	ords []uint32
}

// randTermLists returns sorted terms with lists of every shape: inline,
// sparse (delta), dense and runs (roaring); values share prefixes.
func randTermLists(r *rand.Rand, n int) []termList {
	names := []string{"a:http.method", "a:http.status_code", "a:http.url", "duration", "kind", "operation", "r:host", "service"}
	seen := map[Term]bool{}
	var out []termList
	for len(out) < n {
		t := Term{names[r.IntN(len(names))], fmt.Sprintf("%s-%d", strings.Repeat("v", r.IntN(3)), r.IntN(n*2))}
		if r.IntN(10) == 0 {
			t.Value = ""
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		var ords []uint32
		if r.IntN(3) == 0 {
			for k := 1 + r.IntN(inlineMaxCardinality+2); k > 0; k-- {
				ords = append(ords, r.Uint32N(100000))
			}
			slices.Sort(ords)
			ords = slices.Compact(ords)
		} else {
			ords = randSet(r)
		}
		if len(ords) == 0 {
			ords = []uint32{r.Uint32()}
		}
		out = append(out, termList{t, ords})
	}
	slices.SortFunc(out, func(a, b termList) int { return a.t.Compare(b.t) })
	return out
}

func writePostings(t testing.TB, lists []termList, opts *PostingsWriterOptions) ([]byte, [][]byte) {
	t.Helper()
	w := NewPostingsWriter(opts)
	for i, l := range lists {
		var err error
		switch i % 3 {
		case 0:
			err = w.Add(l.t, l.ords)
		case 1:
			err = w.AddBitmap(l.t, roaring.BitmapOf(l.ords...))
		default:
			err = w.AddPostings(l.t, NewListPostings(l.ords))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	dict, secs, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return dict, secs
}

// sectionStore serves sections and counts loads.
type sectionStore struct {
	secs  [][]byte
	loads atomic.Int64
}

// errNoSection is the loader's error for a section the store does not
// have: what the database reports for a missing key.
var errNoSection = errors.New("no such section")

func (s *sectionStore) load(i int) ([]byte, error) {
	s.loads.Add(1)
	if i < 0 || i >= len(s.secs) {
		return nil, fmt.Errorf("section %d: %w", i, errNoSection)
	}
	return s.secs[i], nil
}

func openPostings(t testing.TB, dict []byte, secs [][]byte, opts *PostingsReaderOptions) (*PostingsReader, *sectionStore) {
	t.Helper()
	st := &sectionStore{secs: secs}
	r, err := NewPostingsReader(dict, st.load, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, st
}

// checkReader compares every answer of r with lists.
func checkReader(t *testing.T, r *PostingsReader, lists []termList) {
	t.Helper()
	if r.NumTerms() != len(lists) {
		t.Fatalf("NumTerms = %d, want %d", r.NumTerms(), len(lists))
	}
	present := map[Term]bool{}
	values := map[string][]string{}
	var names []string
	for _, l := range lists {
		present[l.t] = true
		if len(names) == 0 || names[len(names)-1] != l.t.Name {
			names = append(names, l.t.Name)
		}
		values[l.t.Name] = append(values[l.t.Name], l.t.Value)
	}
	if got := r.Names(); !slices.Equal(got, names) {
		t.Fatalf("Names = %v, want %v", got, names)
	}
	for _, n := range names {
		got, err := r.Values(n)
		if err != nil || !slices.Equal(got, values[n]) {
			t.Fatalf("Values(%q) = %v, %v; want %v", n, got, err, values[n])
		}
	}
	for _, l := range lists {
		p, err := r.Postings(l.t)
		if err != nil {
			t.Fatalf("%v: %v", l.t, err)
		}
		if _, isBitmap := p.(*bitmapPostings); len(l.ords) <= inlineMaxCardinality && isBitmap {
			t.Fatalf("%v: %d ordinals not inline", l.t, len(l.ords))
		}
		got, err := Expand(p)
		if err != nil || !slices.Equal(got, l.ords) {
			t.Fatalf("%v: %d ordinals, %v; want %d", l.t, len(got), err, len(l.ords))
		}
		if c, err := r.Cardinality(l.t); err != nil || c != uint64(len(l.ords)) {
			t.Fatalf("%v: Cardinality = %d, %v; want %d", l.t, c, err, len(l.ords))
		}
		for _, absent := range []Term{
			{l.t.Name, l.t.Value + "\x00"},
			{l.t.Name, l.t.Value + "~"},
			{l.t.Name + "\x00", l.t.Value},
			{l.t.Name[:len(l.t.Name)-1], l.t.Value},
			{l.t.Name, strings.TrimSuffix(l.t.Value, l.t.Value[max(len(l.t.Value)-1, 0):])},
			{"", ""},
			{"\xff", ""},
		} {
			if present[absent] {
				continue
			}
			p, err := r.Postings(absent)
			if err != nil || !IsEmpty(p) {
				t.Fatalf("absent %v: %v, %v", absent, p, err)
			}
			if c, err := r.Cardinality(absent); err != nil || c != 0 {
				t.Fatalf("absent %v: Cardinality = %d, %v", absent, c, err)
			}
		}
	}
	checkPostingsRange(t, r.PostingsRange, lists)
	i := 0
	err := r.ForEachTerm(func(term Term, card uint64) error {
		if term != lists[i].t || card != uint64(len(lists[i].ords)) {
			t.Fatalf("ForEachTerm %d: %v %d, want %v %d", i, term, card, lists[i].t, len(lists[i].ords))
		}
		i++
		return nil
	})
	if err != nil || i != len(lists) {
		t.Fatalf("ForEachTerm: %d terms, %v", i, err)
	}
}

// checkPostingsRange compares PostingsRange over random bounds with lists.
func checkPostingsRange(t *testing.T, pr func(name, from, to string, fn func(string, Postings) error) error, lists []termList) {
	t.Helper()
	r := rand.New(rand.NewPCG(20, uint64(len(lists))))
	bound := func() string {
		switch k := r.IntN(5); {
		case k == 0 || len(lists) == 0:
			return ""
		case k == 1:
			return "v"
		default:
			v := lists[r.IntN(len(lists))].t.Value
			if k == 2 {
				v += "\x00"
			}
			return v
		}
	}
	for i := 0; i < 50; i++ {
		name := "service"
		if len(lists) > 0 {
			name = lists[r.IntN(len(lists))].t.Name
		}
		from, to := bound(), bound()
		var want []termList
		for _, l := range lists {
			if l.t.Name == name && l.t.Value >= from && (to == "" || l.t.Value < to) {
				want = append(want, l)
			}
		}
		var got []termList
		err := pr(name, from, to, func(v string, p Postings) error {
			ords, err := Expand(p)
			got = append(got, termList{Term{name, v}, ords})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, want, func(a, b termList) bool { return a.t == b.t && slices.Equal(a.ords, b.ords) }) {
			t.Fatalf("PostingsRange(%q, %q, %q): %d values, want %d", name, from, to, len(got), len(want))
		}
	}
	if len(lists) > 0 {
		stop := errors.New("stop")
		if err := pr(lists[0].t.Name, "", "", func(string, Postings) error { return stop }); err != stop {
			t.Fatalf("PostingsRange error = %v", err)
		}
	}
}

func TestPostingsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		terms int
		opts  PostingsWriterOptions
	}{
		{"one term", 1, PostingsWriterOptions{}},
		{"small sections, one-run pages", 200, PostingsWriterOptions{SectionSize: 64, DictPageSize: 1}},
		{"4k sections, small pages", 500, PostingsWriterOptions{SectionSize: 4096, DictPageSize: 256}},
		{"uncompressed", 500, PostingsWriterOptions{SectionSize: 4096, DictPageSize: 256, Compression: PostingsUncompressed}},
		{"defaults", 500, PostingsWriterOptions{}},
		{"many terms", 5000, PostingsWriterOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, uint64(tc.terms+tc.opts.SectionSize)))
			lists := randTermLists(r, tc.terms)
			dict, secs := writePostings(t, lists, &tc.opts)
			if tc.opts.SectionSize > 0 && tc.terms > 100 && len(secs) < 2 {
				t.Fatalf("%d sections of at most %d bytes", len(secs), tc.opts.SectionSize)
			}
			for _, cache := range []int{0, -1} {
				if cache < 0 && tc.terms > 500 {
					continue // without a cache every lookup decompresses: slow
				}
				pr, _ := openPostings(t, dict, secs, &PostingsReaderOptions{CacheBytes: cache})
				if tc.opts.DictPageSize > 0 && tc.terms > 100 && len(pr.pages) < 2 {
					t.Fatalf("%d dictionary pages of %d bytes", len(pr.pages), tc.opts.DictPageSize)
				}
				checkReader(t, pr, lists)
			}
		})
	}
}

// TestPostingsSharedDecoder reads two blocks' postings with one zstd
// decoder.
func TestPostingsSharedDecoder(t *testing.T) {
	dec, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for seed := uint64(0); seed < 2; seed++ {
		lists := randTermLists(rand.New(rand.NewPCG(17, seed)), 300)
		dict, secs := writePostings(t, lists, &PostingsWriterOptions{SectionSize: 4096, DictPageSize: 512})
		pr, _ := openPostings(t, dict, secs, &PostingsReaderOptions{Decoder: dec})
		checkReader(t, pr, lists)
	}
}

// TestPostingsCompressionChoice checks that sections and pages are
// compressed when that pays and only then.
func TestPostingsCompressionChoice(t *testing.T) {
	var dense, random []uint32
	r := rand.New(rand.NewPCG(18, 18))
	for v := uint32(0); v < 1<<16; v++ {
		if v%3 != 0 {
			dense = append(dense, v)
		}
		if r.IntN(2) == 0 {
			random = append(random, v)
		}
	}
	for _, tc := range []struct {
		name        string
		ords        []uint32
		compression PostingsCompression
		want        byte
	}{
		{"compressible", dense, PostingsZstd, compressionZstd},
		{"compressible, compression off", dense, PostingsUncompressed, compressionNone},
		{"incompressible", random, PostingsZstd, compressionNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewPostingsWriter(&PostingsWriterOptions{Compression: tc.compression})
			if err := w.Add(Term{"a", "b"}, tc.ords); err != nil {
				t.Fatal(err)
			}
			_, secs, err := w.Finish()
			if err != nil || len(secs) != 1 {
				t.Fatalf("%d sections, %v", len(secs), err)
			}
			if got := secs[0][5]; got != tc.want {
				t.Fatalf("section compression %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPostingsEmpty(t *testing.T) {
	w := NewPostingsWriter(nil)
	if err := w.Add(Term{"a", "b"}, nil); err != nil {
		t.Fatal(err)
	}
	dict, secs, err := w.Finish()
	if err != nil || len(secs) != 0 {
		t.Fatalf("Finish: %d sections, %v", len(secs), err)
	}
	r, _ := openPostings(t, dict, secs, nil)
	checkReader(t, r, nil)
}

func TestPostingsWriterErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(w *PostingsWriter) error
	}{
		{"term out of order", func(w *PostingsWriter) error {
			w.Add(Term{"b", "1"}, []uint32{1})
			return w.Add(Term{"a", "9"}, []uint32{1})
		}},
		{"value out of order", func(w *PostingsWriter) error {
			w.Add(Term{"a", "2"}, []uint32{1})
			return w.Add(Term{"a", "1"}, []uint32{1})
		}},
		{"duplicate term", func(w *PostingsWriter) error {
			w.Add(Term{"a", "1"}, []uint32{1})
			return w.Add(Term{"a", "1"}, []uint32{2})
		}},
		{"ordinals not increasing", func(w *PostingsWriter) error {
			return w.Add(Term{"a", "1"}, []uint32{1, 3, 3})
		}},
		{"add after finish", func(w *PostingsWriter) error {
			w.Finish()
			return w.Add(Term{"a", "1"}, []uint32{1})
		}},
		{"finish twice", func(w *PostingsWriter) error {
			w.Finish()
			_, _, err := w.Finish()
			return err
		}},
		{"failing postings", func(w *PostingsWriter) error {
			return w.AddPostings(Term{"a", "1"}, ErrPostings(errTest))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.fn(NewPostingsWriter(nil)); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestPostingsCorruption flips every byte of a dictionary and of its
// sections: every change must be reported as corruption, never panic or
// pass unnoticed.
func TestPostingsCorruption(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	lists := randTermLists(r, 30)
	dict, secs := writePostings(t, lists, &PostingsWriterOptions{SectionSize: 2048})
	for i := range dict {
		bad := bytes.Clone(dict)
		bad[i] ^= 1 << (i % 8)
		if _, err := NewPostingsReader(bad, (&sectionStore{secs: secs}).load, nil); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("dictionary byte %d flipped: %v", i, err)
		}
	}
	for cut := 0; cut < len(dict); cut++ {
		if _, err := NewPostingsReader(dict[:cut], (&sectionStore{secs: secs}).load, nil); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("dictionary cut at %d: %v", cut, err)
		}
	}
	for s := range secs {
		for i := 0; i < len(secs[s]); i += 1 + i/64 {
			bad := slices.Clone(secs)
			bad[s] = bytes.Clone(secs[s])
			bad[s][i] ^= 0x80
			pr, _ := openPostings(t, dict, bad, &PostingsReaderOptions{CacheBytes: -1})
			failed := false
			for _, l := range lists {
				p, err := pr.Postings(l.t)
				if err != nil {
					if !errors.Is(err, encoding.ErrCorrupt) {
						t.Fatalf("section %d byte %d: %v", s, i, err)
					}
					failed = true
					continue
				}
				if _, err := Expand(p); err != nil {
					t.Fatal(err)
				}
			}
			if !failed {
				t.Fatalf("section %d byte %d flipped unnoticed", s, i)
			}
		}
	}
	// A loader error is reported as is.
	pr, err := NewPostingsReader(dict, func(int) ([]byte, error) { return nil, errTest }, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		if _, err := pr.Postings(l.t); err != nil && !errors.Is(err, errTest) {
			t.Fatalf("loader error: %v", err)
		}
	}
}

func TestPostingsReaderCache(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 13))
	lists := randTermLists(r, 300)
	dict, secs := writePostings(t, lists, &PostingsWriterOptions{SectionSize: 8192})
	if len(secs) < 4 {
		t.Fatalf("only %d sections", len(secs))
	}
	for _, tc := range []struct {
		name       string
		cacheBytes int
		check      func(loads, inSections int64) bool
	}{
		{"unbounded enough", 1 << 30, func(loads, _ int64) bool { return loads == int64(len(secs)) }},
		{"no cache", -1, func(loads, inSections int64) bool { return loads == 2*inSections }},
		{"one section", 1, func(loads, inSections int64) bool { return loads > int64(len(secs)) && loads <= 2*inSections }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, st := openPostings(t, dict, secs, &PostingsReaderOptions{CacheBytes: tc.cacheBytes})
			inSections := int64(0)
			for round := 0; round < 2; round++ {
				for _, l := range lists {
					if len(l.ords) > inlineMaxCardinality {
						inSections += int64(1 - round)
					}
					if _, err := pr.Postings(l.t); err != nil {
						t.Fatal(err)
					}
				}
			}
			if !tc.check(st.loads.Load(), inSections) {
				t.Fatalf("%d loads for %d sections, %d lists in sections read twice", st.loads.Load(), len(secs), inSections)
			}
		})
	}
}

// TestPostingsReaderConcurrent reads from many goroutines; run with -race.
func TestPostingsReaderConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 14))
	lists := randTermLists(r, 200)
	dict, secs := writePostings(t, lists, &PostingsWriterOptions{SectionSize: 4096})
	pr, _ := openPostings(t, dict, secs, &PostingsReaderOptions{CacheBytes: 16384})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lists {
				l := lists[(i*7+g*13)%len(lists)]
				p, err := pr.Postings(l.t)
				if err != nil {
					t.Error(err)
					return
				}
				if c, err := Cardinality(p); err != nil || c != uint64(len(l.ords)) {
					t.Errorf("%v: %d, %v", l.t, c, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestCheckRoaring checks the roaring validator: it accepts what roaring
// writes, and whatever it accepts roaring reads back as a valid bitmap.
func TestCheckRoaring(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 15))
	for i := 0; i < 300; i++ {
		set := randSet(r)
		bm := roaring.BitmapOf(set...)
		if r.IntN(2) == 0 {
			bm.RunOptimize()
		}
		b, err := bm.ToBytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := checkRoaring(b, uint64(len(set))); err != nil {
			t.Fatalf("valid bitmap of %d values rejected: %v", len(set), err)
		}
		if len(b) > 0 && checkRoaring(b, uint64(len(set))+1) == nil {
			t.Fatal("wrong cardinality accepted")
		}
		for m := 0; m < 20; m++ {
			bad := bytes.Clone(b)
			for k := 1 + r.IntN(3); k > 0; k-- {
				bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
			}
			if r.IntN(4) == 0 {
				bad = bad[:r.IntN(len(bad))]
			}
			card := uint64(len(set))
			err := checkRoaring(bad, card)
			if err == nil {
				// A change the validator accepts must be a valid bitmap.
				got := roaring.New()
				if _, err := got.FromBuffer(bad); err != nil {
					t.Fatalf("accepted bytes roaring cannot read: %v", err)
				}
				if err := got.Validate(); err != nil {
					t.Fatalf("accepted an invalid bitmap: %v", err)
				}
			} else if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
		}
	}
}

// goldenPostings is the fixed input of the golden postings files: every
// encoding (inline; Rice with and without a stored length; roaring with
// bitmap and run containers), prefix compression across restart points,
// several dictionary pages and sections, compressed and not.
func goldenPostings() []termList {
	var out []termList
	for i := 0; i < 70; i++ {
		out = append(out, termList{Term{"a:http.url", fmt.Sprintf("/api/v1/items/%03d", i)}, []uint32{uint32(i), uint32(i + 100)}})
	}
	var dense []uint32 // one bitmap container
	for v := uint32(0); v < 1<<16; v++ {
		if v%3 != 0 {
			dense = append(dense, v)
		}
	}
	run := make([]uint32, 0, 3000)
	for v := uint32(70000); v < 73000; v++ {
		run = append(run, v)
	}
	var short, long []uint32 // Rice lists: length implied, length stored
	for i := uint32(0); i < 10; i++ {
		short = append(short, i*997+13)
	}
	for i := uint32(0); i < 100; i++ {
		long = append(long, i*2621+i*i%7)
	}
	sparse := []uint32{3, 900, 4000, 65000, 70001, 140000, 1 << 30}
	out = append(out,
		termList{Term{"a:http.status_code", "200"}, short},
		termList{Term{"a:http.status_code", "500"}, long},
		termList{Term{NameDuration, DurationValue(DurationBucket(1_000_000))}, sparse},
		termList{Term{NameKind, KindValue(encoding.KindServer)}, dense},
		termList{Term{NameOperation, OperationValue("cart", "GET /cart")}, run},
		termList{Term{NameService, "cart"}, []uint32{1}},
	)
	slices.SortFunc(out, func(a, b termList) int { return a.t.Compare(b.t) })
	return out
}

var goldenPostingsOpts = &PostingsWriterOptions{SectionSize: 4096, DictPageSize: 256}

func goldenPath(name string) string { return filepath.Join("testdata", name) }

// TestPostingsGolden checks that the writer still produces the bytes of
// format version 1 and that the reader still reads them. The bytes depend
// on the zstd encoder too: after an upgrade of klauspost/compress that
// changes its output, check that the reader still reads the old files,
// then rewrite them.
func TestPostingsGolden(t *testing.T) {
	lists := goldenPostings()
	dict, secs := writePostings(t, lists, goldenPostingsOpts)
	files := map[string][]byte{"postings_v1_dict.bin": dict}
	for i, s := range secs {
		files[fmt.Sprintf("postings_v1_section%d.bin", i)] = s
	}
	if *update {
		old, err := filepath.Glob(goldenPath("postings_v1_*.bin"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range old {
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
		}
		for name, b := range files {
			if err := os.WriteFile(goldenPath(name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	gotDict, err := os.ReadFile(goldenPath("postings_v1_dict.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var gotSecs [][]byte
	for i := 0; ; i++ {
		b, err := os.ReadFile(goldenPath(fmt.Sprintf("postings_v1_section%d.bin", i)))
		if errors.Is(err, os.ErrNotExist) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		gotSecs = append(gotSecs, b)
	}
	pr, _ := openPostings(t, gotDict, gotSecs, nil)
	checkReader(t, pr, lists)
	if !bytes.Equal(gotDict, dict) || len(gotSecs) != len(secs) {
		t.Fatalf("writer output differs from the golden files (run with -update if the format changed on purpose)")
	}
	for i := range secs {
		if !bytes.Equal(gotSecs[i], secs[i]) {
			t.Fatalf("section %d differs from the golden file", i)
		}
	}
}

// TestPostingsGoldenShape checks that the golden files exercise what they
// claim to: several pages and sections, compressed and not.
func TestPostingsGoldenShape(t *testing.T) {
	dict, secs := writePostings(t, goldenPostings(), goldenPostingsOpts)
	pr, _ := openPostings(t, dict, secs, nil)
	pageKinds, secKinds := map[byte]int{}, map[byte]int{}
	for _, pg := range pr.pages {
		pageKinds[pg.compression]++
	}
	for _, s := range secs {
		secKinds[s[5]]++
	}
	if len(pageKinds) != 2 || len(secKinds) != 2 {
		t.Fatalf("page compressions %v, section compressions %v: want both kinds of each", pageKinds, secKinds)
	}
}

// fuzzFixture is a dictionary whose lists all sit in section 0, in every
// encoding, and that section, both compressed as the writer chooses
// (compressed) and not (plain).
func fuzzFixture(t testing.TB) (compressed, plain struct{ dict, sec []byte }) {
	lists := slices.DeleteFunc(goldenPostings(), func(l termList) bool {
		return l.t.Name == "a:http.url" && l.t.Value > "/api/v1/items/040"
	})
	for _, c := range []PostingsCompression{PostingsZstd, PostingsUncompressed} {
		dict, secs := writePostings(t, lists, &PostingsWriterOptions{SectionSize: 1 << 20, DictPageSize: 256, Compression: c})
		if len(secs) != 1 {
			t.Fatalf("%d sections", len(secs))
		}
		if c == PostingsZstd {
			compressed.dict, compressed.sec = dict, secs[0]
		} else {
			plain.dict, plain.sec = dict, secs[0]
		}
	}
	return compressed, plain
}

// reseal rewrites the trailing CRC32C of b so that mutations reach the
// decoder behind the checksum.
func reseal(b []byte) []byte {
	if len(b) < postingsHeaderLen+postingsTrailerLen {
		return b
	}
	b = bytes.Clone(b)
	e := encoding.Encbuf{B: b[:len(b)-postingsTrailerLen]}
	e.PutBE32(encoding.Checksum(e.B))
	return e.B
}

// exercise runs every reader method on r and the postings it returns, with
// combinators on top; any error must wrap ErrCorrupt (or come from the
// loader, when a garbled dictionary names a section that does not exist).
func exercise(t *testing.T, r *PostingsReader) {
	check := func(err error) {
		if err != nil && !errors.Is(err, encoding.ErrCorrupt) && !errors.Is(err, errNoSection) {
			t.Fatalf("error does not wrap ErrCorrupt: %v", err)
		}
	}
	var terms []Term
	check(r.ForEachTerm(func(t Term, _ uint64) error {
		terms = append(terms, t)
		return nil
	}))
	for _, n := range r.Names() {
		_, err := r.Values(n)
		check(err)
	}
	terms = append(terms, Term{"a:http.url", "/api/v1/items/020"}, Term{NameService, "cart"}, Term{NameKind, "2"})
	small := func() Postings { return NewBitmapPostings(roaring.BitmapOf(1, 2, 3, 1000, 70001)) }
	for _, term := range terms {
		_, err := r.Cardinality(term)
		check(err)
		// Each combination gets its own postings, since they consume them.
		for k := 0; k < 5; k++ {
			p, err := r.Postings(term)
			check(err)
			if err != nil {
				break
			}
			switch k {
			case 0:
				_, err = IntersectCardinality(p, small())
			case 1:
				_, err = Expand(Intersect(p, NewRangePostings(1000, 1<<20), small()))
			case 2:
				_, err = Expand(Merge(p, small()))
			case 3:
				_, err = Expand(Without(small(), Merge(p, NewListPostings([]uint32{7}))))
			case 4:
				for n := 0; n < 100 && p.Next(); n++ {
					p.Seek(p.At() + 100)
				}
				err = p.Err()
			}
			check(err)
		}
	}
}

// fuzzDecoder returns a zstd decoder for the readers of a fuzz target:
// one per target, since making one per input would take most of the time.
func fuzzDecoder(f *testing.F) *zstd.Decoder {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dec.Close)
	return dec
}

func FuzzPostingsDictionary(f *testing.F) {
	compressed, plain := fuzzFixture(f)
	opts := &PostingsReaderOptions{Decoder: fuzzDecoder(f)}
	for _, fix := range []bool{false, true} {
		f.Add(compressed.dict, fix)
		f.Add(plain.dict, fix)
	}
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = reseal(data)
		}
		r, err := NewPostingsReader(data, (&sectionStore{secs: [][]byte{plain.sec}}).load, opts)
		if err != nil {
			if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		exercise(t, r)
	})
}

func FuzzPostingsSection(f *testing.F) {
	compressed, plain := fuzzFixture(f)
	opts := &PostingsReaderOptions{Decoder: fuzzDecoder(f)}
	for _, fix := range []bool{false, true} {
		f.Add(compressed.sec, fix)
		f.Add(plain.sec, fix)
	}
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		if fix {
			data = reseal(data)
		}
		r, err := NewPostingsReader(plain.dict, (&sectionStore{secs: [][]byte{data}}).load, opts)
		if err != nil {
			t.Fatal(err)
		}
		exercise(t, r)
	})
}

// TestWriteFuzzSeeds writes the seed corpora of the fuzz targets with
// -update, so that `go test` replays them without the fuzzer.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seed corpora")
	}
	compressed, plain := fuzzFixture(t)
	bloom := BuildBloom(goldenTraceIDs(), DefaultBloomFPR).Encode()
	type seed struct {
		name string
		data []byte
	}
	for target, seeds := range map[string][]seed{
		"FuzzPostingsDictionary": {{"zstd", compressed.dict}, {"plain", plain.dict}},
		"FuzzPostingsSection":    {{"zstd", compressed.sec}, {"plain", plain.sec}},
		"FuzzBloom":              {{"", bloom}},
	} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, err := filepath.Glob(filepath.Join(dir, "seed-*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range old {
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
		}
		for _, sd := range seeds {
			for _, fix := range []bool{false, true} {
				name := fmt.Sprintf("seed-%s-%v", sd.name, fix)
				body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", sd.data, fix)
				if target == "FuzzBloom" {
					if fix {
						continue
					}
					name = "seed-false"
					body = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", sd.data)
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// benchBlock returns the term lists of a block of n ClickHouse-shaped
// spans.
func benchBlock(n int) []termList {
	m := NewMemPostings()
	x := NewTermExtractor(DefaultMaxValueLen)
	spans := benchSpans(n)
	var ts []Term
	for i, s := range spans {
		ts = ts[:0]
		x.SpanTerms(s, func(t Term) { ts = append(ts, t) })
		_ = m.AddTerms(uint32(i), ts)
	}
	var lists []termList
	_ = m.ForEach(func(t Term, ords []uint32) error {
		lists = append(lists, termList{t, ords})
		return nil
	})
	return lists
}

func BenchmarkPostingsWriter(b *testing.B) {
	const spans = 100_000
	lists := benchBlock(spans)
	var size int
	b.ReportAllocs()
	for b.Loop() {
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
		size = len(dict)
		for _, s := range secs {
			size += len(s)
		}
	}
	b.ReportMetric(float64(size)/spans, "B/span")
	b.ReportMetric(float64(len(lists)), "terms")
}

func BenchmarkPostingsReader(b *testing.B) {
	const spans = 100_000
	lists := benchBlock(spans)
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
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewPostingsReader(dict, (&sectionStore{secs: secs}).load, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(dict)), "dict-bytes")
	})
	pr, _ := openPostings(b, dict, secs, &PostingsReaderOptions{CacheBytes: 1 << 30})
	r := rand.New(rand.NewPCG(16, 16))
	b.Run("cardinality", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pr.Cardinality(lists[r.IntN(len(lists))].t); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("postings", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := pr.Postings(lists[r.IntN(len(lists))].t)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Cardinality(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A latency histogram of one service over the block: |service AND
	// bucket| for every duration bucket present.
	b.Run("histogram", func(b *testing.B) {
		b.ReportAllocs()
		buckets := 0
		for b.Loop() {
			var each []Postings
			err := pr.PostingsRange(NameDuration, "", "", func(_ string, p Postings) error {
				each = append(each, p)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			base, err := pr.Postings(Term{NameService, "service-3"})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := IntersectCardinalities(base, each); err != nil {
				b.Fatal(err)
			}
			buckets = len(each)
		}
		b.ReportMetric(float64(buckets), "buckets")
	})
	b.Run("values/operation", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pr.Values(NameOperation); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRoaringSizeBound checks that the writer's estimate of a roaring
// bitmap's size never exceeds the size roaring writes: the writer skips
// building bitmaps on it.
func TestRoaringSizeBound(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 19))
	for i := 0; i < 500; i++ {
		set := randSet(r)
		if len(set) == 0 {
			continue
		}
		bm := roaring.BitmapOf(set...)
		bm.RunOptimize()
		if bound, size := roaringSizeBound(set), int(bm.GetSerializedSizeInBytes()); bound > size {
			t.Fatalf("%d ordinals: bound %d > size %d", len(set), bound, size)
		}
	}
}
