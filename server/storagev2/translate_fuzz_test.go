package storagev2

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tracedb/tracedb/query"
	exprpb "github.com/tracedb/tracedb/server/pb/expressionv1"
)

// FuzzTranslateFilter feeds random bytes, read as a wire Call, to the
// filter translation: it never panics, and it either compiles a filter or
// refuses it with a *query.FilterError.
func FuzzTranslateFilter(f *testing.F) {
	for _, c := range []*exprpb.Call{
		eqCall("http.status", "500"),
		fieldEq("resource", "service", "backend"),
		{Op: "and", Args: []*exprpb.Expression{
			{Term: &exprpb.Expression_Call{Call: fieldEq("span", "kind", "server")}},
			{Term: &exprpb.Expression_Call{Call: &exprpb.Call{Op: "in", Args: []*exprpb.Expression{
				{Term: &exprpb.Expression_Attr{Attr: &exprpb.AttributeReference{Key: "k", Level: "span"}}},
				{Term: &exprpb.Expression_List{List: &exprpb.List{Values: []string{"1", "2"}, Type: "int"}}},
			}}}},
		}},
		{Op: "some", Args: []*exprpb.Expression{
			{Term: &exprpb.Expression_Nested{Nested: &exprpb.NestedReference{Level: "event"}}},
			{Term: &exprpb.Expression_Call{Call: fieldEq("event", "name", "exception")}},
		}},
		{Op: "not", Args: []*exprpb.Expression{{}}},
	} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c exprpb.Call
		if proto.Unmarshal(b, &c) != nil {
			return
		}
		flt, err := translateFilter(&c)
		if err != nil {
			var fe *query.FilterError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *query.FilterError", err, err)
			}
			return
		}
		if flt == nil {
			t.Fatal("no filter and no error")
		}
	})
}
