package redisstore

// only is the one node of a store on a single Redis, for tests.
func (s *Store) only() *node {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		return n
	}
	return nil
}
