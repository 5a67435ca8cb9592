package zklock

// ExitPruneAt is exitPruneAt, for the tests.
const ExitPruneAt = exitPruneAt

// ExitWatches counts the session's watches on contenders' nodes.
func ExitWatches(s *Session) int {
	n := 0
	s.exitWatches.Range(func(any, any) bool { n++; return true })
	return n
}
