package aggregate

// KnownUsers is how many user ids s remembers as existing (tests check the bound).
func KnownUsers(s *Service) int { return s.known.size() }
