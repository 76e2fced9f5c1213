package dnsdisco

import (
	"math/rand/v2"
	"slices"
)

// srvRecord is one SRV answer, independent of miekg/dns types.
type srvRecord struct {
	Target    string // A-label, no trailing dot
	Port      uint16
	Priority  uint16
	Weight    uint16
	DirectTLS bool
	Secure    bool
}

// randIntN returns r.Rand(n) kept within [0,n) even if a caller-supplied
// function misbehaves, or math/rand/v2 when Rand is nil.
func (r *Resolver) randIntN(n int) int {
	if n <= 1 {
		return 0
	}
	if r.Rand == nil {
		return rand.IntN(n)
	}
	v := r.Rand(n) % n
	if v < 0 {
		v += n
	}
	return v
}

// orderSRV returns recs sorted by priority ascending and, within one
// priority, in the weighted random order of RFC 2782 ("Usage rules"): the
// records not yet ordered are arranged with weight-0 records first, a
// uniform number in [0, sum of weights] is drawn, and the first record
// whose running weight sum is >= that number is taken next. Weight-0
// records therefore get only a small chance while heavier records exist.
// When every remaining weight is 0 the pick is uniform, which RFC 2782
// allows ("in any order") and spreads load. recs is not modified.
func orderSRV(recs []srvRecord, randN func(int) int) []srvRecord {
	in := slices.Clone(recs)
	slices.SortStableFunc(in, func(a, b srvRecord) int { return int(a.Priority) - int(b.Priority) })
	out := make([]srvRecord, 0, len(in))
	for start := 0; start < len(in); {
		end := start + 1
		for end < len(in) && in[end].Priority == in[start].Priority {
			end++
		}
		group := in[start:end]
		// Weight-0 records at the beginning (RFC 2782), order otherwise kept.
		slices.SortStableFunc(group, func(a, b srvRecord) int {
			return b2i(a.Weight != 0) - b2i(b.Weight != 0)
		})
		for len(group) > 0 {
			sum := 0
			for _, g := range group {
				sum += int(g.Weight)
			}
			pick := 0
			if sum == 0 {
				pick = randN(len(group))
			} else {
				x := randN(sum + 1)
				run := 0
				for i, g := range group {
					run += int(g.Weight)
					if run >= x {
						pick = i
						break
					}
				}
			}
			out = append(out, group[pick])
			group = slices.Delete(group, pick, pick+1)
		}
		start = end
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
