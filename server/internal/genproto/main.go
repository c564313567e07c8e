// Command genproto regenerates the Go stubs of Jaeger's storage v2 API
// (server/pb/storagev2), of its filter expressions
// (server/pb/expressionv1) and of the remote sampling API
// (server/pb/samplingv2, from api_v2/sampling.proto) from the
// .proto files of the github.com/jaegertracing/jaeger-idl module at
// IDLVersion, and the stubs of tracedb's own analytics API
// (server/pb/analyticsv1) from the repository's server/proto.
//
// Run it from the repository root:
//
//	go run ./server/internal/genproto
//
// It needs protoc on the PATH (Debian's protobuf-compiler, ProtocVersion)
// and the network or a module cache that holds the pinned generators. The
// output depends only on the pinned versions: running it twice writes the
// same bytes.
//
// Two things are done to the protos before generation, and why:
//
//   - The OpenTelemetry protos they import are not in jaeger-idl. Their
//     descriptors are taken from the Go package go.opentelemetry.io/proto/otlp
//     that tracedb already links, written as a FileDescriptorSet and passed
//     to protoc with --descriptor_set_in, and the Go import path of each is
//     mapped to that package: no OTLP code is generated here, and the
//     generated stubs refer to the very messages that the rest of the
//     process uses.
//   - The gnostic OpenAPI annotations (openapi.v3.schema and
//     openapi.v3.property options) only document the JSON schema; their
//     proto is not in the module cache, so the import and the options are
//     stripped. The wire format does not change: options are not encoded
//     in messages.
//   - api_v2/sampling.proto imports gogoproto's options (gogo's generator
//     only) and google.api's HTTP annotation (a gRPC-gateway route); neither
//     proto is in the module cache and neither changes the wire format, so
//     the imports, the file options `option (gogoproto.x) = ...;` and the
//     method option `option (google.api.http) = {...};` are stripped the
//     same way.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Pinned versions.
const (
	IDLModule          = "github.com/jaegertracing/jaeger-idl"
	IDLVersion         = "v0.14.0"
	ProtocVersion      = "libprotoc 3.21.12"
	ProtocGenGo        = "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
	ProtocGenGoGRPC    = "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
	goPackagePrefix    = "github.com/tracedb/tracedb/server/pb/"
	outDir             = "server/pb"
	otlpDescriptorFile = "otlp.binpb"
	// localProtoDir holds the repository's own .proto files.
	localProtoDir = "server/proto"
)

// packages maps each generated Go package to its .proto files, relative to
// the jaeger-idl module's proto directory, or with local set, to
// localProtoDir.
var packages = []struct {
	name  string
	files []string
	local bool
}{
	{"expressionv1", []string{"expression/v1/expression.proto", "expression/v1/vocabulary.proto"}, false},
	{"storagev2", []string{"storage/v2/trace_storage.proto", "storage/v2/dependency_storage.proto", "storage/v2/capabilities.proto"}, false},
	{"samplingv2", []string{"api_v2/sampling.proto"}, false},
	{"analyticsv1", []string{"tracedb/analytics/v1/analytics.proto"}, true},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "genproto:", err)
		os.Exit(1)
	}
}

func run() error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root")
	}
	out, err := exec.Command("protoc", "--version").Output()
	if err != nil {
		return fmt.Errorf("protoc: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != ProtocVersion {
		return fmt.Errorf("protoc is %q, want %q (apt-get install protobuf-compiler)", got, ProtocVersion)
	}

	tmp, err := os.MkdirTemp("", "genproto")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "bin")
	for _, tool := range []string{ProtocGenGo, ProtocGenGoGRPC} {
		cmd := exec.Command("go", "install", tool)
		cmd.Env = append(os.Environ(), "GOBIN="+bin)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go install %s: %w", tool, err)
		}
	}

	idlDir, err := moduleDir(IDLModule + "@" + IDLVersion)
	if err != nil {
		return err
	}
	src := filepath.Join(tmp, "proto")
	for _, p := range packages {
		for _, f := range p.files {
			if p.local {
				// The repository's own protos need no mending.
				if err := copyFile(filepath.Join(localProtoDir, f), filepath.Join(src, f)); err != nil {
					return err
				}
				continue
			}
			b, err := os.ReadFile(filepath.Join(idlDir, "proto", f))
			if err != nil {
				return err
			}
			b, err = stripGnostic(b)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			b, err = stripGogoAndHTTP(b)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			dst := filepath.Join(src, f)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				return err
			}
		}
	}
	descSet := filepath.Join(tmp, otlpDescriptorFile)
	if err := writeOTLPDescriptors(descSet); err != nil {
		return err
	}

	var mopts []string
	for _, p := range packages {
		for _, f := range p.files {
			mopts = append(mopts, "M"+f+"="+goPackagePrefix+p.name+";"+p.name)
		}
	}
	gen := filepath.Join(tmp, "gen")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		return err
	}
	for _, p := range packages {
		args := []string{
			"--plugin=protoc-gen-go=" + filepath.Join(bin, "protoc-gen-go"),
			"--plugin=protoc-gen-go-grpc=" + filepath.Join(bin, "protoc-gen-go-grpc"),
			"--descriptor_set_in=" + descSet,
			"--proto_path=" + src,
			"--proto_path=/usr/include",
			"--go_out=" + gen, "--go_opt=paths=source_relative",
			"--go-grpc_out=" + gen, "--go-grpc_opt=paths=source_relative",
		}
		for _, m := range mopts {
			args = append(args, "--go_opt="+m, "--go-grpc_opt="+m)
		}
		args = append(args, p.files...)
		cmd := exec.Command("protoc", args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("protoc %s: %w", p.name, err)
		}
	}

	// Move the output into place, replacing the previous generation.
	for _, p := range packages {
		dst := filepath.Join(outDir, p.name)
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		for _, f := range p.files {
			base := strings.TrimSuffix(f, ".proto")
			for _, suffix := range []string{".pb.go", "_grpc.pb.go"} {
				b, err := os.ReadFile(filepath.Join(gen, base+suffix))
				if errors.Is(err, os.ErrNotExist) && suffix == "_grpc.pb.go" {
					continue // a file without services
				}
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dst, filepath.Base(base)+suffix), b, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// copyFile copies the file from to the path to, creating its directory.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// moduleDir downloads mod (path@version) into the module cache and
// returns its directory.
func moduleDir(mod string) (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", mod).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", mod, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	return info.Dir, nil
}

// writeOTLPDescriptors writes the descriptors of OTLP's trace.proto and of
// everything it imports, as linked into this program, to path.
func writeOTLPDescriptors(path string) error {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(tracepb.File_opentelemetry_proto_trace_v1_trace_proto)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// stripGnostic removes the import of gnostic's OpenAPI annotations and
// every option that uses them: message options
// `option (openapi.v3.x) = {...};` and field options
// `[(openapi.v3.x) = {...}]`, which in these files are always a field's
// only option.
func stripGnostic(b []byte) ([]byte, error) {
	const imp = `import "gnostic/openapiv3/annotations.proto";`
	b = bytes.Replace(b, []byte(imp), nil, 1)
	const marker = "(openapi.v3."
	var out []byte
	for {
		i := bytes.Index(b, []byte(marker))
		if i < 0 {
			out = append(out, b...)
			break
		}
		// The option's start: "option" for a message option, "[" for a
		// field option.
		head := b[:i]
		trimmed := bytes.TrimRight(head, " \t\n")
		var start int
		var field bool
		switch {
		case bytes.HasSuffix(trimmed, []byte("option")):
			start = len(trimmed) - len("option")
		case bytes.HasSuffix(trimmed, []byte("[")):
			start, field = len(trimmed)-1, true
		default:
			return nil, fmt.Errorf("openapi option at byte %d is neither a message nor a field option", len(out)+i)
		}
		// Its end: the balanced braces of the value, then ";" or "]".
		j := bytes.IndexByte(b[i:], '{')
		if j < 0 {
			return nil, errors.New("openapi option without a value")
		}
		end, err := matchBrace(b, i+j)
		if err != nil {
			return nil, err
		}
		rest := bytes.TrimLeft(b[end:], " \t\n")
		closer := byte(';')
		if field {
			closer = ']'
		}
		if len(rest) == 0 || rest[0] != closer {
			return nil, fmt.Errorf("openapi option not closed by %q", closer)
		}
		out = append(out, b[:start]...)
		out = bytes.TrimRight(out, " \t")
		b = rest[1:]
	}
	return out, nil
}

// stripGogoAndHTTP removes the imports of gogoproto's options and of
// google.api's HTTP annotations, every file option `option (gogoproto.x) =
// value;` and every method option `option (google.api.http) = {...};`. A
// file without them comes back unchanged.
func stripGogoAndHTTP(b []byte) ([]byte, error) {
	for _, imp := range []string{`import "gogoproto/gogo.proto";`, `import "google/api/annotations.proto";`} {
		b = bytes.Replace(b, []byte(imp), nil, 1)
	}
	for _, marker := range []string{"(gogoproto.", "(google.api."} {
		var out []byte
		for {
			i := bytes.Index(b, []byte(marker))
			if i < 0 {
				out = append(out, b...)
				break
			}
			trimmed := bytes.TrimRight(b[:i], " \t\n")
			if !bytes.HasSuffix(trimmed, []byte("option")) {
				return nil, fmt.Errorf("%s option at byte %d is not an option statement", marker, len(out)+i)
			}
			start := len(trimmed) - len("option")
			// Its end: the first ";" after the value, whose braces (if
			// any) are balanced.
			end := i
			if j := bytes.IndexAny(b[i:], "{;"); j >= 0 && b[i+j] == '{' {
				e, err := matchBrace(b, i+j)
				if err != nil {
					return nil, err
				}
				end = e
			}
			k := bytes.IndexByte(b[end:], ';')
			if k < 0 {
				return nil, fmt.Errorf("%s option not closed by ';'", marker)
			}
			out = append(out, b[:start]...)
			out = bytes.TrimRight(out, " \t")
			b = b[end+k+1:]
		}
		b = out
	}
	return b, nil
}

// matchBrace returns the index just past the brace that closes the one at
// b[open], skipping quoted strings.
func matchBrace(b []byte, open int) (int, error) {
	depth := 0
	for i := open; i < len(b); i++ {
		switch b[i] {
		case '"', '\'':
			q := b[i]
			for i++; i < len(b) && b[i] != q; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, errors.New("unbalanced braces in an openapi option")
}
