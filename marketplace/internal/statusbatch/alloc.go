package statusbatch

import "runtime"

// AllocatedBytes returns how many bytes fn allocates on the heap: for tests
// that hold a decoder of hostile answers to a stated bound.
func AllocatedBytes(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
