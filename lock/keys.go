package lock

// Keys computes the Redis keys of one posting. It is exported so that code
// which must touch a posting's keys in the same Lua script as the lock (the
// ledger checks the fence counter) derives them exactly as the lock does.
type Keys struct {
	Prefix   string // default "bid_lock"
	HashTags bool   // wrap "<marketplace>:<posting>" in {} for Redis Cluster
}

// Lock is the lock key of a posting.
func (k Keys) Lock(marketplaceID, postingID string) string {
	return k.Prefix + ":" + k.Tag(marketplaceID, postingID)
}

// Fence is the fence counter key of a posting. "<prefix>_fence" cannot
// collide with a lock key: the byte after the prefix differs.
func (k Keys) Fence(marketplaceID, postingID string) string {
	return k.Prefix + "_fence:" + k.Tag(marketplaceID, postingID)
}

// Tag is the posting part of every key: "<marketplace>:<posting>", or with
// HashTags "{<marketplace>:<posting>}". A posting ID may itself contain
// braces; Redis then hashes on a shorter tag, but the same one for every key
// of the posting, so they still share a slot.
func (k Keys) Tag(marketplaceID, postingID string) string {
	if k.HashTags {
		return "{" + marketplaceID + ":" + postingID + "}"
	}
	return marketplaceID + ":" + postingID
}
