package db

import (
	"go.opentelemetry.io/collector/pdata/ptrace"

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
// encoding.ErrCorrupt.
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
	u := ptrace.ProtoUnmarshaler{}
	td, err := u.UnmarshalTraces(d.B)
	if err != nil {
		return "", ptrace.Traces{}, encoding.Corruptf("wal record payload", d.Offset(), "otlp: %v", err)
	}
	return tenant, td, nil
}
