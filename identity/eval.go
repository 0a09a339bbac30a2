package identity

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
