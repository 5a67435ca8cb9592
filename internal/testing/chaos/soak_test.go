package chaos

import (
	"math"
	"strings"
	"testing"
)

func TestGrows(t *testing.T) {
	nan := math.NaN()
	// series builds n samples of f(i).
	series := func(n int, f func(i int) float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return v
	}
	noise := func(i int) float64 { return float64((i * 7) % 5) } // 0..4, no trend
	tol := Tolerance{Abs: 10, Rel: 0.1}
	for _, c := range []struct {
		what   string
		values []float64
		grows  bool
		why    string
	}{
		{"flat with noise", series(30, func(i int) float64 { return 200 + 3*noise(i) }), false, "median"},
		{"a steady leak", series(30, func(i int) float64 { return 200 + 5*float64(i) + noise(i) }), true, "grew from a median of"},
		{"a slow leak within the tolerance", series(30, func(i int) float64 { return 200 + float64(i)/5 }), false, "median"},
		{"growth during the warm-up only", series(30, func(i int) float64 { return 100 + 100*min(float64(i), 10)/10 + noise(i) }), false, "median"},
		{"a spike in the last third", series(30, func(i int) float64 {
			if i == 25 || i == 26 {
				return 1000 // a fault's moment: a cut client, a restart
			}
			return 200 + noise(i)
		}), false, "median"},
		{"a step up that stays", series(30, func(i int) float64 {
			if i >= 20 {
				return 300
			}
			return 200
		}), true, "grew from a median of 200.0 in the middle third to 300.0"},
		{"relative tolerance", series(30, func(i int) float64 {
			if i >= 20 {
				return 1080 // 8% above
			}
			return 1000
		}), false, "(100.0 allowed)"},
		{"unread samples left out", series(30, func(i int) float64 {
			if i%3 == 0 {
				return nan
			}
			return 200 + 5*float64(i)
		}), true, "grew"},
		{"too few samples", []float64{1, 2, 3, 100, 200, 300, 400}, false, "too few samples"},
		{"too few read", series(30, func(i int) float64 {
			if i >= 20 && i%5 != 0 {
				return nan
			}
			return float64(i * 100)
		}), false, "too few samples"},
	} {
		grows, why := Grows(c.values, tol)
		if grows != c.grows || !strings.Contains(why, c.why) {
			t.Errorf("%s: Grows = %v, %q; want %v, with %q", c.what, grows, why, c.grows, c.why)
		}
	}
}
