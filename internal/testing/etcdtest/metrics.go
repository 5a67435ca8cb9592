package etcdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// httpClient makes one connection per request: a kept-alive connection
// would leave goroutines behind that the leak check reports, and the harness's
// few HTTP requests — scrapes and health checks — gain nothing from reuse.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Metric scrapes the member at endpoint (host:port, as Endpoint returns)
// and returns the sum of every sample of the metric name whose labels
// include all of labels. For example
//
//	Metric(ctx, ep, "grpc_server_handled_total", map[string]string{"grpc_method": "Put"})
//
// counts the Put requests the member has answered, whatever their code.
// A histogram's series are read by their own names, such as
// "etcd_disk_wal_fsync_duration_seconds_count".
//
// A series that does not exist yet sums to zero, as a counter that was
// never incremented would read; so does a misspelt name. Tests should
// therefore assert on a change between two reads, not on a bare zero.
func Metric(ctx context.Context, endpoint, name string, labels map[string]string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scraping %s: %s", endpoint, resp.Status)
	}
	v, err := sumMetric(resp.Body, name, labels)
	if err != nil {
		return 0, fmt.Errorf("scraping %s: %w", endpoint, err)
	}
	return v, nil
}

// sumMetric reads the Prometheus text exposition format. It knows just
// enough of it for etcd's output: comments, optional labels with escaped
// values, and an optional timestamp after the value.
func sumMetric(r io.Reader, name string, labels map[string]string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		// The name must end here: "foo" is not "foo_bucket".
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		got := map[string]string{}
		if rest[0] == '{' {
			var err error
			got, rest, err = parseLabels(rest[1:])
			if err != nil {
				return 0, fmt.Errorf("%q: %w", line, err)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("%q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", line, err)
		}
		if includes(got, labels) {
			sum += v
		}
	}
	return sum, sc.Err()
}

// parseLabels reads `a="x",b="y"}` and returns the labels and what
// follows the closing brace.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return nil, "", errors.New("unterminated labels")
		}
		if s[0] == '}' {
			return labels, s[1:], nil
		}
		key, after, ok := strings.Cut(s, "=")
		after = strings.TrimLeft(after, " \t")
		if !ok || !strings.HasPrefix(after, `"`) {
			return nil, "", errors.New("label without a quoted value")
		}
		var val strings.Builder
		i := 1
		for ; i < len(after) && after[i] != '"'; i++ {
			c := after[i]
			if c == '\\' && i+1 < len(after) {
				i++
				switch after[i] {
				case 'n':
					c = '\n'
				default: // \\ and \"
					c = after[i]
				}
			}
			val.WriteByte(c)
		}
		if i == len(after) {
			return nil, "", errors.New("unterminated label value")
		}
		labels[strings.TrimSpace(key)] = val.String()
		s = after[i+1:]
	}
}

func includes(got, want map[string]string) bool {
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}
