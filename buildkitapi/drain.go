package buildkitapi

// Active returns the number of solves a client started that have not ended, their
// export included: a draining server waits for them before it stops (kiln serve's
// --shutdown-grace).
func (s *Server) Active() int {
	return s.jobs.started()
}

// started counts the jobs whose Control.Solve has begun.
func (js *jobs) started() int {
	js.mu.Lock()
	defer js.mu.Unlock()
	n := 0
	for _, j := range js.byID {
		select {
		case <-j.started:
			n++
		default:
		}
	}
	return n
}
