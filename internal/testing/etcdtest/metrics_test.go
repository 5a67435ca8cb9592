package etcdtest

import (
	"math"
	"strings"
	"testing"
)

// exposition is a hand-written scrape with the shapes etcd's output
// takes, and a few it could.
const exposition = `# HELP grpc_server_handled_total Total number of RPCs completed on the server.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7
grpc_server_handled_total{grpc_code="Unavailable",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 2
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 100
grpc_server_handled_total{grpc_code="OK",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 1e+00
grpc_server_handled_total_extra{grpc_method="Put"} 1000
etcd_debugging_mvcc_events_total 12 1712345678000
odd{path="a\"b,c}\\",x="new\nline"} 3
odd{path="plain"} 4
  spaced{ a = "1" , } +Inf
`

func TestSumMetric(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Put"}, 9},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Put", "grpc_code": "OK"}, 7},
		{"grpc_server_handled_total", nil, 110},
		{"grpc_server_handled_total", map[string]string{"grpc_type": "unary", "grpc_method": "Range"}, 100},
		{"grpc_server_handled_total", map[string]string{"grpc_method": "Delete"}, 0},
		{"etcd_debugging_mvcc_events_total", nil, 12},
		{"etcd_debugging_mvcc_events_total", map[string]string{"any": "label"}, 0},
		{"odd", map[string]string{"path": `a"b,c}\`, "x": "new\nline"}, 3},
		{"odd", nil, 7},
		{"no_such_metric", nil, 0},
	} {
		got, err := sumMetric(strings.NewReader(exposition), tc.name, tc.labels)
		if err != nil || got != tc.want {
			t.Errorf("%s %v: got %v, %v; want %v", tc.name, tc.labels, got, err, tc.want)
		}
	}

	got, err := sumMetric(strings.NewReader(exposition), "spaced", map[string]string{"a": "1"})
	if err != nil || !math.IsInf(got, 1) {
		t.Errorf("spaced: got %v, %v; want +Inf", got, err)
	}

	for _, bad := range []string{
		`m{a="1" 2`,
		`m{a=1} 2`,
		`m{a="1} 2`,
		`m{a="1"}`,
		`m{a="1"} two`,
	} {
		if v, err := sumMetric(strings.NewReader(bad), "m", nil); err == nil {
			t.Errorf("%s: got %v, want an error", bad, v)
		}
	}
}
