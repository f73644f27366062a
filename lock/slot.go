package lock

import (
	"strconv"
	"strings"
	"sync"
)

// ClusterSlots is how many hash slots Redis Cluster has. A key's slot is
// CRC16 of its hash tag (the part between the first '{' and the next '}',
// when that is not empty) or of the whole key.
const ClusterSlots = 16384

// KeySlot is the Redis Cluster hash slot of key, computed as Redis does.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % ClusterSlots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021), the checksum Redis Cluster
// hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags holds, for every slot, a short hash tag that lands in it: the
// name of a per-slot key ("bid_lock_fence:{3kf}") is then chosen to share a
// slot with a posting's keys, so one script can touch both on Redis Cluster.
// It is a pure function of the slot, computed once (about 170,000 CRCs).
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, ClusterSlots)
	for i, left := uint64(0), ClusterSlots; left > 0; i++ {
		s := strconv.FormatUint(i, 36)
		if sl := crc16(s) % ClusterSlots; tags[sl] == "" {
			tags[sl] = s
			left--
		}
	}
	return tags
})

// SlotTag is a hash tag, braces included, whose slot is slot.
func SlotTag(slot int) string { return "{" + slotTags()[slot%ClusterSlots] + "}" }
