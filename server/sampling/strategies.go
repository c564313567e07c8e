package sampling

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	pb "github.com/tracedb/tracedb/server/pb/samplingv2"
)

// The strategy types of a strategies file, as in Jaeger's file format.
const (
	TypeProbabilistic = "probabilistic"
	TypeRateLimiting  = "ratelimiting"
)

// DefaultProbability is the probability served when nothing else is
// configured: no strategies file, or a file without default_strategy or
// default_sampling_probability. It is Jaeger's default.
const DefaultProbability = 0.001

// MaxStrategiesFileBytes bounds a strategies file; a larger one is refused
// (it is certainly not hand-written, and is read every time it changes).
const MaxStrategiesFileBytes = 8 << 20

// ErrInvalidStrategies is wrapped by every error of ParseStrategies: the
// file is not valid JSON of the format, or a value is out of range.
var ErrInvalidStrategies = errors.New("invalid sampling strategies")

// fileStrategies is the JSON of a strategies file (Jaeger's format):
//
//	{
//	  "default_strategy": {"type": "probabilistic", "param": 0.5,
//	    "operation_strategies": [{"operation": "/health", "type": "probabilistic", "param": 0}]},
//	  "default_sampling_probability": 0.001,
//	  "service_strategies": [
//	    {"service": "foo", "type": "probabilistic", "param": 0.8,
//	     "operation_strategies": [{"operation": "op1", "type": "probabilistic", "param": 0.2}]},
//	    {"service": "bar", "type": "ratelimiting", "param": 5}
//	  ]
//	}
type fileStrategies struct {
	DefaultStrategy            *fileServiceStrategy  `json:"default_strategy"`
	DefaultSamplingProbability *float64              `json:"default_sampling_probability"`
	ServiceStrategies          []fileServiceStrategy `json:"service_strategies"`
}

type fileServiceStrategy struct {
	Service             string                  `json:"service"`
	Type                string                  `json:"type"`
	Param               float64                 `json:"param"`
	OperationStrategies []fileOperationStrategy `json:"operation_strategies"`
}

type fileOperationStrategy struct {
	Operation string  `json:"operation"`
	Type      string  `json:"type"`
	Param     float64 `json:"param"`
}

// Strategies are the parsed strategies of a file, ready to serve. A
// Strategies is immutable and safe for concurrent use.
type Strategies struct {
	services map[string]*pb.SamplingStrategyResponse
	def      *pb.SamplingStrategyResponse
	defProb  float64
}

// ParseStrategies parses a strategies file in Jaeger's JSON format:
// default_strategy (a strategy without "service"), service_strategies (a
// strategy per service), each of type "probabilistic" (param: the
// probability, 0 to 1) or "ratelimiting" (param: whole traces per second),
// with optional operation_strategies (probabilistic only), and
// default_sampling_probability (the probability of operations without
// their own strategy when a service's strategy is rate limiting, and of
// the default strategy when default_strategy is absent; default
// DefaultProbability). The default strategy's operation strategies apply
// to every service, under the service's own. Unknown keys, duplicate
// services or operations, and out-of-range values are errors wrapping
// ErrInvalidStrategies.
func ParseStrategies(b []byte) (*Strategies, error) {
	if len(b) > MaxStrategiesFileBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidStrategies, len(b), MaxStrategiesFileBytes)
	}
	var f fileStrategies
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidStrategies, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidStrategies)
	}
	s := &Strategies{services: make(map[string]*pb.SamplingStrategyResponse, len(f.ServiceStrategies)), defProb: DefaultProbability}
	if p := f.DefaultSamplingProbability; p != nil {
		if !validProbability(*p) {
			return nil, fmt.Errorf("%w: default_sampling_probability %v is not in [0, 1]", ErrInvalidStrategies, *p)
		}
		s.defProb = *p
	}
	var defOps []fileOperationStrategy
	if d := f.DefaultStrategy; d != nil {
		if d.Service != "" {
			return nil, fmt.Errorf("%w: default_strategy names a service (%q)", ErrInvalidStrategies, d.Service)
		}
		if err := checkStrategy(*d); err != nil {
			return nil, fmt.Errorf("%w: default_strategy: %w", ErrInvalidStrategies, err)
		}
		defOps = d.OperationStrategies
		s.def = buildResponse(*d, nil, s.defProb)
	} else {
		s.def = probabilistic(s.defProb)
	}
	for i, ss := range f.ServiceStrategies {
		if ss.Service == "" {
			return nil, fmt.Errorf("%w: service_strategies[%d]: no service", ErrInvalidStrategies, i)
		}
		if _, dup := s.services[ss.Service]; dup {
			return nil, fmt.Errorf("%w: service_strategies[%d]: service %q appears twice", ErrInvalidStrategies, i, ss.Service)
		}
		if err := checkStrategy(ss); err != nil {
			return nil, fmt.Errorf("%w: service_strategies[%d] (%s): %w", ErrInvalidStrategies, i, ss.Service, err)
		}
		s.services[ss.Service] = buildResponse(ss, defOps, s.defProb)
	}
	return s, nil
}

// ForService returns the file's strategy for service and true, or the
// default strategy and false when the file has none for it. The response
// is shared: callers must not modify it.
func (s *Strategies) ForService(service string) (*pb.SamplingStrategyResponse, bool) {
	if r, ok := s.services[service]; ok {
		return r, true
	}
	return s.def, false
}

// Default returns the default strategy. The response is shared.
func (s *Strategies) Default() *pb.SamplingStrategyResponse { return s.def }

// DefaultProbability returns default_sampling_probability, or
// DefaultProbability when the file does not set it.
func (s *Strategies) DefaultProbability() float64 { return s.defProb }

func validProbability(p float64) bool { return p >= 0 && p <= 1 } // false for NaN

func checkStrategy(s fileServiceStrategy) error {
	switch s.Type {
	case TypeProbabilistic:
		if !validProbability(s.Param) {
			return fmt.Errorf("probabilistic param %v is not in [0, 1]", s.Param)
		}
	case TypeRateLimiting:
		if !(s.Param >= 0 && s.Param <= math.MaxInt32) || s.Param != math.Trunc(s.Param) {
			return fmt.Errorf("ratelimiting param %v is not a whole number of traces per second", s.Param)
		}
	default:
		return fmt.Errorf("type %q is not %q or %q", s.Type, TypeProbabilistic, TypeRateLimiting)
	}
	seen := make(map[string]bool, len(s.OperationStrategies))
	for i, o := range s.OperationStrategies {
		switch {
		case o.Operation == "":
			return fmt.Errorf("operation_strategies[%d]: no operation", i)
		case seen[o.Operation]:
			return fmt.Errorf("operation_strategies[%d]: operation %q appears twice", i, o.Operation)
		case o.Type != TypeProbabilistic:
			return fmt.Errorf("operation_strategies[%d] (%s): type %q: operations take %q only (the API has no per-operation rate limits)", i, o.Operation, o.Type, TypeProbabilistic)
		case !validProbability(o.Param):
			return fmt.Errorf("operation_strategies[%d] (%s): probabilistic param %v is not in [0, 1]", i, o.Operation, o.Param)
		}
		seen[o.Operation] = true
	}
	return nil
}

func probabilistic(p float64) *pb.SamplingStrategyResponse {
	return &pb.SamplingStrategyResponse{
		StrategyType:          pb.SamplingStrategyType_PROBABILISTIC,
		ProbabilisticSampling: &pb.ProbabilisticSamplingStrategy{SamplingRate: p},
	}
}

// buildResponse turns a checked strategy into the API's response. The
// operations are the strategy's own, then those of defOps it does not
// override; with any, the response carries operationSampling, whose
// default probability is the strategy's when probabilistic, else defProb.
func buildResponse(s fileServiceStrategy, defOps []fileOperationStrategy, defProb float64) *pb.SamplingStrategyResponse {
	var r *pb.SamplingStrategyResponse
	opDefault := defProb
	if s.Type == TypeRateLimiting {
		r = &pb.SamplingStrategyResponse{
			StrategyType:         pb.SamplingStrategyType_RATE_LIMITING,
			RateLimitingSampling: &pb.RateLimitingSamplingStrategy{MaxTracesPerSecond: int32(s.Param)},
		}
	} else {
		r = probabilistic(s.Param)
		opDefault = s.Param
	}
	var ops []*pb.OperationSamplingStrategy
	own := make(map[string]bool, len(s.OperationStrategies))
	for _, o := range s.OperationStrategies {
		own[o.Operation] = true
		ops = append(ops, &pb.OperationSamplingStrategy{Operation: o.Operation, ProbabilisticSampling: &pb.ProbabilisticSamplingStrategy{SamplingRate: o.Param}})
	}
	for _, o := range defOps {
		if !own[o.Operation] {
			ops = append(ops, &pb.OperationSamplingStrategy{Operation: o.Operation, ProbabilisticSampling: &pb.ProbabilisticSamplingStrategy{SamplingRate: o.Param}})
		}
	}
	if len(ops) > 0 {
		r.OperationSampling = &pb.PerOperationSamplingStrategies{DefaultSamplingProbability: opDefault, PerOperationStrategies: ops}
	}
	return r
}

// fileState is what the reloader remembers of the file it last read.
type fileState struct {
	modTime time.Time
	size    int64
}

func statFile(path string) (fileState, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}, err
	}
	return fileState{modTime: fi.ModTime(), size: fi.Size()}, nil
}

// loadStrategies reads and parses the file at path.
func loadStrategies(path string) (*Strategies, fileState, error) {
	st, err := statFile(path)
	if err != nil {
		return nil, st, fmt.Errorf("load sampling strategies: %w", err)
	}
	if st.size > MaxStrategiesFileBytes {
		return nil, st, fmt.Errorf("load sampling strategies %s: %w: %d bytes, the limit is %d", path, ErrInvalidStrategies, st.size, MaxStrategiesFileBytes)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, st, fmt.Errorf("load sampling strategies: %w", err)
	}
	s, err := ParseStrategies(b)
	if err != nil {
		return nil, st, fmt.Errorf("load sampling strategies %s: %w", path, err)
	}
	return s, st, nil
}
