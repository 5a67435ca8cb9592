package bench

import (
	"math"
	"runtime"
	"runtime/metrics"
	"syscall"
	"time"
)

// usage is what this process has used so far: the client's own costs,
// as long as the server runs in another process.
type usage struct {
	cpu        time.Duration // user and system
	mallocs    uint64        // heap objects allocated
	bytes      uint64        // heap bytes allocated
	goroutines float64       // goroutines started; NaN if the runtime does not say
}

// goroutinesCreated is the runtime's count of goroutines started, which
// Go has had since 1.26.
const goroutinesCreated = "/sched/goroutines-created:goroutines"

// readUsage reads the process's usage; it stops the world for a moment,
// so call it between measurements, not inside them.
func readUsage() usage {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := []metrics.Sample{{Name: goroutinesCreated}}
	metrics.Read(s)
	g := math.NaN()
	if s[0].Value.Kind() == metrics.KindUint64 {
		g = float64(s[0].Value.Uint64())
	}
	return usage{cpu: cpuTime(), mallocs: m.Mallocs, bytes: m.TotalAlloc, goroutines: g}
}

// cpuTime is the CPU time the process has used, in user and system mode.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perOp is the usage from u to v, each figure divided by n: CPU in µs.
func (u usage) perOp(v usage, n int) (cpuMicros, mallocs, bytes, goroutines float64) {
	f := float64(n)
	return float64((v.cpu - u.cpu).Microseconds()) / f, float64(v.mallocs-u.mallocs) / f,
		float64(v.bytes-u.bytes) / f, (v.goroutines - u.goroutines) / f
}

// footprint is what live state costs the process: goroutines, and the
// heap and stack bytes in use after a collection.
type footprint struct {
	goroutines int
	bytes      uint64
}

func readFootprint() footprint {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return footprint{goroutines: runtime.NumGoroutine(), bytes: m.HeapAlloc + m.StackInuse}
}
