package identity

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// PRF is precision, recall and F1.
type PRF struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

func prf(tp, predicted, actual float64) PRF {
	var p PRF
	if predicted > 0 {
		p.Precision = tp / predicted
	} else {
		p.Precision = 1
	}
	if actual > 0 {
		p.Recall = tp / actual
	} else {
		p.Recall = 1
	}
	if p.Precision+p.Recall > 0 {
		p.F1 = 2 * p.Precision * p.Recall / (p.Precision + p.Recall)
	}
	return p
}

// Evaluation compares predicted clusters with the truth.
type Evaluation struct {
	// Pairwise counts record pairs: a predicted pair is two records in one
	// predicted cluster, a true pair two records of one person.
	Pairwise      PRF   `json:"pairwise"`
	TruePairs     int64 `json:"true_pairs"`
	PredictedPair int64 `json:"predicted_pairs"`
	CorrectPairs  int64 `json:"correct_pairs"`
	// Cluster counts clusters that equal a person's records exactly:
	// precision over predicted clusters, recall over people.
	Cluster           PRF `json:"cluster"`
	PredictedClusters int `json:"predicted_clusters"`
	TrueClusters      int `json:"true_clusters"`
	ExactClusters     int `json:"exact_clusters"`
	// HardMerged counts hard-negative pairs of people put in one cluster,
	// by kind.
	HardMerged map[string]int `json:"hard_negatives_merged"`
	HardTotal  map[string]int `json:"hard_negatives"`
}

// Evaluate measures predicted clusters (a label per record, as
// Result.Cluster) against the true person of each record.
func Evaluate(cluster, person []int32, hard []HardPair) Evaluation {
	var e Evaluation
	type pair struct{ c, p int32 }
	both := map[pair]int64{}
	csize := map[int32]int64{}
	psize := map[int32]int64{}
	for i := range cluster {
		both[pair{cluster[i], person[i]}]++
		csize[cluster[i]]++
		psize[person[i]]++
	}
	c2 := func(n int64) int64 { return n * (n - 1) / 2 }
	for _, n := range both {
		e.CorrectPairs += c2(n)
	}
	for _, n := range csize {
		e.PredictedPair += c2(n)
	}
	for _, n := range psize {
		e.TruePairs += c2(n)
	}
	e.Pairwise = prf(float64(e.CorrectPairs), float64(e.PredictedPair), float64(e.TruePairs))
	e.PredictedClusters, e.TrueClusters = len(csize), len(psize)
	for k, n := range both {
		if csize[k.c] == n && psize[k.p] == n {
			e.ExactClusters++
		}
	}
	e.Cluster = prf(float64(e.ExactClusters), float64(e.PredictedClusters), float64(e.TrueClusters))
	// hard negatives: people A and B merged when any record of A shares a
	// cluster with any record of B
	clustersOf := map[int32][]int32{}
	for i := range cluster {
		clustersOf[person[i]] = append(clustersOf[person[i]], cluster[i])
	}
	e.HardMerged, e.HardTotal = map[string]int{}, map[string]int{}
	for _, h := range hard {
		ca, cb := clustersOf[h.A], clustersOf[h.B]
		if len(ca) == 0 || len(cb) == 0 {
			continue
		}
		e.HardTotal[h.Kind]++
		merged := false
		for _, x := range ca {
			for _, y := range cb {
				merged = merged || x == y
			}
		}
		if merged {
			e.HardMerged[h.Kind]++
		}
	}
	return e
}

// EvalReport is what `ehrgate match eval` prints: pairwise figures at the
// top level, cluster figures under "cluster".
type EvalReport struct {
	Records   int     `json:"records"`
	People    int     `json:"people"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Cluster   struct {
		PRF
		Predicted int `json:"predicted"`
		True      int `json:"true"`
		Exact     int `json:"exact"`
	} `json:"cluster"`
	HardNegatives map[string]int `json:"hard_negatives"`
	HardMerged    map[string]int `json:"hard_negatives_merged"`
	// Missed counts the true pairs left in different clusters by cause
	// (AnalyzeMisses).
	Missed map[string]int `json:"missed_pairs"`
	// MissSamples holds, when asked (RunEval's misses), up to that many
	// missed true pairs of each cause with their explanations.
	MissSamples  map[string][]MissSample `json:"miss_samples,omitempty"`
	Candidates   int                     `json:"candidates"`
	Links        int                     `json:"links"`
	Review       int                     `json:"review"`
	EMIterations int                     `json:"em_iterations"`
	EMConverged  bool                    `json:"em_converged"`
	// Seconds is the matcher's time (blocking, comparison, EM, scoring,
	// clustering); GenerateSeconds the synthetic population's.
	Seconds         float64 `json:"seconds"`
	GenerateSeconds float64 `json:"generate_seconds"`
	// CPUSeconds is the CPU time the matcher used (every core), which a
	// machine shared with other work does not inflate as it does Seconds.
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
}

// MissSample is a missed true pair: its records (synthetic) and their
// score.
type MissSample struct {
	A Key `json:"a"`
	B Key `json:"b"`
	Score
}

// RunEval generates a population of people across sources, matches it as
// the service does and measures the result against the truth; with
// misses > 0 the report keeps that many missed pairs of each cause.
func RunEval(ctx context.Context, gen GenOptions, opts Options, misses int) (EvalReport, error) {
	var rep EvalReport
	t0 := time.Now()
	pop := Generate(gen)
	t1 := time.Now()
	cpu0 := cpuSeconds()
	m := New(pop.Records, opts)
	res, err := m.Run(ctx)
	if err != nil {
		return rep, err
	}
	t2 := time.Now()
	rep.CPUSeconds = cpuSeconds() - cpu0
	ms := AnalyzeMisses(m, res, pop.Person, misses)
	rep.Missed = ms.ByCause
	for cause, scores := range ms.Samples {
		if rep.MissSamples == nil {
			rep.MissSamples = map[string][]MissSample{}
		}
		for _, sc := range scores {
			rep.MissSamples[cause] = append(rep.MissSamples[cause], MissSample{A: sc.A, B: sc.B, Score: sc})
		}
	}
	e := Evaluate(res.Cluster, pop.Person, pop.Hard)
	rep.Records, rep.People = len(pop.Records), pop.People
	rep.Precision, rep.Recall, rep.F1 = e.Pairwise.Precision, e.Pairwise.Recall, e.Pairwise.F1
	rep.Cluster.PRF = e.Cluster
	rep.Cluster.Predicted, rep.Cluster.True, rep.Cluster.Exact = e.PredictedClusters, e.TrueClusters, e.ExactClusters
	rep.HardNegatives, rep.HardMerged = e.HardTotal, e.HardMerged
	rep.Candidates, rep.Links, rep.Review = res.Candidates, res.Links, len(res.Review)
	rep.EMIterations, rep.EMConverged = res.Model.Iterations, res.Model.Converged
	rep.Seconds = t2.Sub(t1).Seconds()
	rep.GenerateSeconds = t1.Sub(t0).Seconds()
	rep.PeakRSSMB = PeakRSSMB()
	return rep, nil
}

// PeakRSSMB returns the process's peak resident set size in MiB (VmHWM of
// /proc/self/status), or 0 where that is not available.
func PeakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
	}
	return 0
}

// Misses counts the true pairs that ended in different clusters, by cause:
// "not blocked" (no shared blocking key), "below review" (scored under the
// review weight), "guard: ..." (scored to link, stopped by a pair guard),
// "score" (between review and link weight), "cluster" (the pair would link
// but clustering kept the groups apart). Samples holds up to perCause
// examples of each cause as explanations, for diagnostics.
type Misses struct {
	ByCause map[string]int     `json:"by_cause"`
	Samples map[string][]Score `json:"-"`
}

// AnalyzeMisses classifies the missed true pairs of a run (m after Run,
// res its result, person the truth).
func AnalyzeMisses(m *Matcher, res *Result, person []int32, perCause int) Misses {
	ms := Misses{ByCause: map[string]int{}, Samples: map[string][]Score{}}
	byPerson := map[int32][]int32{}
	for i, p := range person {
		byPerson[p] = append(byPerson[p], int32(i))
	}
	prior := m.model.PriorWeight()
	for _, rs := range byPerson {
		for x := 0; x < len(rs); x++ {
			for y := x + 1; y < len(rs); y++ {
				a, b := rs[x], rs[y]
				if res.Cluster[a] == res.Cluster[b] {
					continue
				}
				ka := keysOf(nil, &m.feats[a], 0)
				kb := keysOf(nil, &m.feats[b], 0)
				shared := false
				for _, p := range ka {
					for _, q := range kb {
						shared = shared || p.h == q.h
					}
				}
				c := compare(&m.feats[a], &m.feats[b])
				w := prior + m.weight(a, b, c.pat)
				cause := ""
				switch d, g := m.decide(w, c); {
				case !shared:
					cause = "not blocked"
				case d == NoLink:
					cause = "below review"
				case d == Review && g != "":
					cause = "guard: " + g
				case d == Review:
					cause = "score"
				default:
					cause = "cluster"
				}
				ms.ByCause[cause]++
				if len(ms.Samples[cause]) < perCause {
					ms.Samples[cause] = append(ms.Samples[cause], m.Compare(int(a), int(b)))
				}
			}
		}
	}
	return ms
}
