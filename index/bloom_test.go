package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/tracedb/tracedb/encoding"
)

func randTraceID(r *rand.Rand, jaeger64 bool) encoding.TraceID {
	var id encoding.TraceID
	if !jaeger64 {
		binary.BigEndian.PutUint64(id[:8], r.Uint64())
	}
	binary.BigEndian.PutUint64(id[8:], r.Uint64())
	return id
}

// TestBloomFalsePositiveRate measures the false-positive rate on random
// and on 64-bit (high half zero) trace IDs, and checks there are no false
// negatives.
func TestBloomFalsePositiveRate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int
		fpr      float64
		jaeger64 bool
	}{
		{"random 1%", 100_000, 0.01, false},
		{"64-bit ids 1%", 100_000, 0.01, true},
		{"sequential 64-bit ids 1%", 100_000, 0.01, true},
		{"small 0.1%", 1_000, 0.001, false},
		{"tiny", 3, 0.01, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(17, uint64(tc.n)))
			ids := make([]encoding.TraceID, tc.n)
			members := map[encoding.TraceID]bool{}
			for i := range ids {
				ids[i] = randTraceID(r, tc.jaeger64)
				if tc.name[:3] == "seq" {
					ids[i] = encoding.TraceID{}
					binary.BigEndian.PutUint64(ids[i][8:], uint64(i+1))
				}
				members[ids[i]] = true
			}
			b := BuildBloom(ids, tc.fpr)
			for _, id := range ids {
				if !b.MayContain(id) {
					t.Fatalf("false negative for %s", id)
				}
			}
			const probes = 1_000_000
			fp := 0
			for i := 0; i < probes; i++ {
				id := randTraceID(r, tc.jaeger64)
				if tc.name[:3] == "seq" {
					id = encoding.TraceID{}
					binary.BigEndian.PutUint64(id[8:], uint64(tc.n+1+i))
				}
				if !members[id] && b.MayContain(id) {
					fp++
				}
			}
			rate := float64(fp) / probes
			t.Logf("n=%d target %.3f%%: measured %.3f%% with %d bits (%.1f bits/id), %d hashes",
				tc.n, 100*tc.fpr, 100*rate, b.NumBits(), float64(b.NumBits())/float64(tc.n), b.NumHashes())
			if rate > tc.fpr*1.25 {
				t.Fatalf("false-positive rate %.4f, want about %.4f", rate, tc.fpr)
			}
		})
	}
}

func TestBloomEncodeDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 18))
	ids := make([]encoding.TraceID, 1000)
	for i := range ids {
		ids[i] = randTraceID(r, i%2 == 0)
	}
	b := BuildBloom(ids, 0.01)
	enc := b.Encode()
	got, err := DecodeBloom(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.NumBits() != b.NumBits() || got.NumHashes() != b.NumHashes() || !bytes.Equal(got.Encode(), enc) {
		t.Fatal("decoded filter differs")
	}
	for _, id := range ids {
		if !got.MayContain(id) {
			t.Fatal("false negative after decoding")
		}
	}
	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 1 << (i % 8)
		if _, err := DecodeBloom(bad); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for cut := 0; cut < len(enc); cut++ {
		if _, err := DecodeBloom(enc[:cut]); !errors.Is(err, encoding.ErrCorrupt) {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
}

func goldenTraceIDs() []encoding.TraceID {
	var ids []encoding.TraceID
	for i := 0; i < 50; i++ {
		var id encoding.TraceID
		id[0], id[15] = byte(i), byte(255-i)
		ids = append(ids, id)
		var j encoding.TraceID // a 64-bit Jaeger ID
		binary.BigEndian.PutUint64(j[8:], uint64(i)*0x9e3779b97f4a7c15)
		ids = append(ids, j)
	}
	return ids
}

// TestBloomGolden pins format version 1, hash and probe layout included:
// a filter built today must be byte-identical to the golden file, and the
// golden filter must still hold its IDs.
func TestBloomGolden(t *testing.T) {
	ids := goldenTraceIDs()
	enc := BuildBloom(ids, DefaultBloomFPR).Encode()
	path := goldenPath("bloom_v1.bin")
	if *update {
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBloom(golden)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !b.MayContain(id) {
			t.Fatalf("golden filter lost %s", id)
		}
	}
	if !bytes.Equal(golden, enc) {
		t.Fatal("encoded filter differs from the golden file (run with -update if the format changed on purpose)")
	}
}

func FuzzBloom(f *testing.F) {
	f.Add(BuildBloom(goldenTraceIDs(), DefaultBloomFPR).Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBloom(data)
		if err != nil {
			if !errors.Is(err, encoding.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			// Behind a valid checksum, the decoder itself must hold.
			if len(data) >= bloomHeaderLen+bloomTrailerLen {
				fixed := bytes.Clone(data[:len(data)-bloomTrailerLen])
				fixed = binary.BigEndian.AppendUint32(fixed, encoding.Checksum(fixed))
				if b, err = DecodeBloom(fixed); err != nil {
					return
				}
			} else {
				return
			}
		}
		b.MayContain(encoding.TraceID{1})
		b.Add(encoding.TraceID{2})
		if !b.MayContain(encoding.TraceID{2}) {
			t.Fatal("false negative")
		}
		if _, err := DecodeBloom(b.Encode()); err != nil {
			t.Fatalf("re-encoded filter does not decode: %v", err)
		}
	})
}

func BenchmarkBloomMayContain(b *testing.B) {
	r := rand.New(rand.NewPCG(19, 19))
	ids := make([]encoding.TraceID, 100_000)
	for i := range ids {
		ids[i] = randTraceID(r, false)
	}
	bl := BuildBloom(ids, DefaultBloomFPR)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bl.MayContain(ids[i%len(ids)])
		i++
	}
}
