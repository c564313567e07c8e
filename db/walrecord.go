package db

import (
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/tracedb/tracedb/encoding"
)

// A WAL record payload is one write's accepted spans:
//
//	┌─────────────┬──────────────────┬────────┬──────────────────────────────┐
//	│ version u8  │ tenant len uvar  │ tenant │ OTLP TracesData (protobuf)   │
//	└─────────────┴──────────────────┴────────┴──────────────────────────────┘
//
// The WAL frames and checksums each record (db/internal/wal/wal.md); the
// payload uses OTLP's own protobuf so that a record can be read by any OTLP
// tool. Version 1 is the only one.
const walRecordVersion = 1

func encodeWALRecord(dst []byte, tenant string, td ptrace.Traces) ([]byte, error) {
	m := ptrace.ProtoMarshaler{}
	body, err := m.MarshalTraces(td)
	if err != nil {
		return nil, err
	}
	return walRecordOfWire(dst, tenant, body), nil
}

// walRecordOfWire appends the WAL record of tenant's spans whose OTLP
// protobuf encoding is wire to dst.
func walRecordOfWire(dst []byte, tenant string, wire []byte) []byte {
	e := encoding.Encbuf{B: dst}
	e.PutByte(walRecordVersion)
	e.PutUvarintString(tenant)
	e.PutBytes(wire)
	return e.B
}

// decodeWALRecord returns the tenant and spans of a record. Errors wrap
// encoding.ErrCorrupt; the tenant is returned with an error in the spans,
// once it was read.
func decodeWALRecord(b []byte) (string, ptrace.Traces, error) {
	d := encoding.NewDecbuf(b, "wal record payload")
	if v := d.Byte(); v != walRecordVersion && d.Err() == nil {
		return "", ptrace.Traces{}, encoding.Corruptf("wal record payload", 0, "unknown version %d", v)
	}
	tenant := d.UvarintString()
	if err := d.Err(); err != nil {
		return "", ptrace.Traces{}, err
	}
	if err := ValidateTenant(tenant); err != nil {
		return "", ptrace.Traces{}, encoding.Corruptf("wal record payload", 1, "%v", err)
	}
	// Decoded as an OTLP Export request (the same wire format as
	// TracesData), as the receivers decode it: pdata then moves the
	// deprecated instrumentation_library_spans of old clients into
	// scope_spans, so that a record logged as the request's own bytes
	// (DB.WriteEncoded) replays to exactly the spans the write stored.
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(d.B); err != nil {
		return tenant, ptrace.Traces{}, encoding.Corruptf("wal record payload", d.Offset(), "otlp: %v", err)
	}
	return tenant, req.Traces(), nil
}
