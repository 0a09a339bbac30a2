package synth

import (
	"math/bits"
	"time"
)

// rng is a splitmix64 generator. It is written out here rather than taken
// from math/rand/v2 because the package promises byte-identical output for a
// seed across Go releases, and only a generator we own can keep that promise.
type rng struct{ s uint64 }

// mix64 is the splitmix64 finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// newRNG derives the stream of patient i from the dataset seed and the
// reference time, so each patient is independent of every other.
func newRNG(seed int64, now time.Time, i int) *rng {
	s := mix64(uint64(seed)+0x9e3779b97f4a7c15) ^ mix64(uint64(i)*0xd1342543de82ef95+1) ^ mix64(uint64(now.Unix()))
	return &rng{s: s}
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// intn returns a number in [0, n); n must be positive.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// between returns an int in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// float returns a number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// fbetween returns a float in [lo, hi).
func (r *rng) fbetween(lo, hi float64) float64 { return lo + (hi-lo)*r.float() }

// chance reports true with probability p.
func (r *rng) chance(p float64) bool { return r.float() < p }

// dur returns a duration in [lo, hi).
func (r *rng) dur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.intn(int(hi-lo)))
}

// pick returns a random element of xs.
func pick[T any](r *rng, xs []T) T { return xs[r.intn(len(xs))] }

// weighted is an element with a relative weight.
type weighted[T any] struct {
	w float64
	v T
}

// pickWeighted returns an element with probability proportional to its weight.
func pickWeighted[T any](r *rng, xs []weighted[T]) T {
	var total float64
	for _, x := range xs {
		total += x.w
	}
	f := r.float() * total
	for _, x := range xs {
		if f < x.w {
			return x.v
		}
		f -= x.w
	}
	return xs[len(xs)-1].v
}
