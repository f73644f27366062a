package lock

import "fmt"

// MaxPostingIDLen is the longest posting ID accepted.
const MaxPostingIDLen = 128

// MaxMarketplaceIDLen is the longest marketplace ID accepted.
const MaxMarketplaceIDLen = 32

// ValidateIDs checks a marketplace and posting ID before they become part of
// a key. Marketplace IDs are [a-z0-9_-]{1,32}: a colon would let
// ("up:work","x") and ("up","work:x") share a key. Posting IDs are 1-128
// printable, non-space ASCII bytes.
func ValidateIDs(marketplaceID, postingID string) error {
	if err := ValidateMarketplaceID(marketplaceID); err != nil {
		return err
	}
	return ValidatePostingID(postingID)
}

// ValidateMarketplaceID checks a marketplace ID alone.
func ValidateMarketplaceID(id string) error {
	if len(id) == 0 || len(id) > MaxMarketplaceIDLen {
		return fmt.Errorf("%w: marketplace %q: want 1-%d characters of [a-z0-9_-]", ErrInvalidID, id, MaxMarketplaceIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: marketplace %q: byte %d (%q) is not one of [a-z0-9_-]", ErrInvalidID, id, i, c)
		}
	}
	return nil
}

// ValidatePostingID checks a posting ID alone.
func ValidatePostingID(id string) error {
	if len(id) == 0 || len(id) > MaxPostingIDLen {
		return fmt.Errorf("%w: posting %q: want 1-%d printable non-space bytes", ErrInvalidID, truncate(id), MaxPostingIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: posting %q: byte %d is not printable non-space ASCII", ErrInvalidID, truncate(id), i)
		}
	}
	return nil
}

// truncate keeps error messages bounded when the input is hostile.
func truncate(s string) string {
	if len(s) > MaxPostingIDLen+8 {
		return s[:MaxPostingIDLen] + "..."
	}
	return s
}
