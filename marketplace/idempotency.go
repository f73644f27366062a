package marketplace

import (
	"crypto/sha256"
	"encoding/hex"
)

// IdempotencyKey derives the key sent with every bid on a posting. It depends
// only on marketplace, posting and account, so every attempt by every worker,
// before and after crashes, sends the same key and a marketplace that honours
// keys turns a repeat into a replay. The 0 bytes keep ("ab","c") and ("a","bc")
// apart.
func IdempotencyKey(marketplaceID, postingID, account string) string {
	h := sha256.New()
	h.Write([]byte(marketplaceID))
	h.Write([]byte{0})
	h.Write([]byte(postingID))
	h.Write([]byte{0})
	h.Write([]byte(account))
	return "bid-" + hex.EncodeToString(h.Sum(nil)[:16])
}
