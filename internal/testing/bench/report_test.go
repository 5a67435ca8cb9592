package bench

import (
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestAlternate(t *testing.T) {
	var got []int
	if err := alternate(3, func(i int) error { got = append(got, i); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 2, 1, 0, 0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestQuantile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	if q := Quantile(v, 0.5); q != 3 {
		t.Errorf("median %v, want 3", q)
	}
	if q := Quantile(v, 0.99); q != 4 {
		t.Errorf("p99 of 5 values %v, want 4 (the nearest rank below)", q)
	}
	if q := Quantile(nil, 0.5); q != 0 {
		t.Errorf("median of nothing %v, want 0", q)
	}
}

func results() []Result {
	r := Result{Server: "ZooKeeper", Version: "3.8.0", Names: [3]string{"turnstile", "zk.Lock", "herd"}, Matrix: true}
	for _, n := range []int{1, 8, 64} {
		r.Contended = append(r.Contended, Contended{N: n, Figures: Figures{
			PerSec: [3]float64{1000, 500, 1000 / float64(n)},
			Work:   [3]Counters{{Requests: 6, Notifications: 1}, {Requests: 5, Notifications: 1}, {Requests: 2 * float64(n), Notifications: float64(n)}},
		}})
	}
	r.Drains = []Drain{{N: 8, Millis: [3]float64{5, 5, 9}}}
	e := r
	e.Server, e.Names[Baseline] = "etcd", "concurrency.Mutex"
	return []Result{r, e}
}

func TestMarkdown(t *testing.T) {
	var b strings.Builder
	Markdown(&b, results())
	out := b.String()
	for _, want := range []string{
		"### ZooKeeper 3.8.0",
		"| N | turnstile | zk.Lock | herd | turnstile ÷ zk.Lock |",
		"| 8 | 1000 | 500 | 125 | 2.00 |",   // hand-offs per second
		"| 64 | 6.00 | 5.00 | 128 | 1.20 |", // requests per hand-off
		"| 8: time (ms) | 5.00 | 5.00 | 9.00 | 1.00 |",
		"turnstile ÷ concurrency.Mutex",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Hand-off latency") {
		t.Errorf("a table of hand-off latencies, none measured:\n%s", out)
	}
}

// The chart is well-formed SVG with a line for each contestant on each
// server in each of its two plots.
func TestChart(t *testing.T) {
	var b strings.Builder
	Chart(&b, results())
	d := xml.NewDecoder(strings.NewReader(b.String()))
	lines := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%v in:\n%s", err, b.String())
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 12 {
		t.Errorf("%d lines, want 12", lines)
	}
}
