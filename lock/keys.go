package lock

// Keys computes the Redis keys of one posting. It is exported so that code
// which must touch a posting's keys in the same Lua script as the lock (the
// ledger's claim and settle scripts) derives them exactly as the lock does.
type Keys struct {
	Prefix   string // default "bid_lock"
	HashTags bool   // wrap "<marketplace>:<posting>" in {} for Redis Cluster
}

// Lock is the lock key of a posting.
func (k Keys) Lock(marketplaceID, postingID string) string {
	return k.Prefix + ":" + k.Tag(marketplaceID, postingID)
}

// Fence is the fence counter a posting's tokens come from. It is not the
// posting's own: one counter serves every posting of a Redis node (without
// hash tags), or of a Cluster hash slot (with them: the key carries a tag of
// the posting's slot). A posting's tokens still strictly increase, because
// every acquisition of it takes the next value of that counter; and the
// counter never expires, so they keep increasing for as long as any record
// of the posting lives, at the cost of at most 16384 keys in all rather
// than one per posting. "<prefix>_fence" cannot collide with a lock key: the
// byte after the prefix differs.
func (k Keys) Fence(marketplaceID, postingID string) string {
	return k.Prefix + "_fence" + k.Shard(marketplaceID, postingID)
}

// Shard is what a per-slot key (the fence counter, the ledger's indexes)
// appends to its name to live in the posting's Redis Cluster slot:
// ":{<tag of that slot>}", or "" without hash tags, where every key is on
// one node anyway.
func (k Keys) Shard(marketplaceID, postingID string) string {
	if !k.HashTags {
		return ""
	}
	return ":" + SlotTag(KeySlot(k.Lock(marketplaceID, postingID)))
}

// Tag is the posting part of every key: "<marketplace>:<posting>", or with
// HashTags "{<marketplace>:<posting>}". A posting ID may itself contain
// braces; Redis then hashes on a shorter tag, but the same one for every key
// of the posting, so they still share a slot (and Shard follows Redis' rule).
func (k Keys) Tag(marketplaceID, postingID string) string {
	if k.HashTags {
		return "{" + marketplaceID + ":" + postingID + "}"
	}
	return marketplaceID + ":" + postingID
}
