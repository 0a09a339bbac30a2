package identity_test

import (
	"context"
	"fmt"

	"ehrgate/identity"
)

// Match a synthetic population and measure it against the truth.
func Example() {
	pop := identity.Generate(identity.GenOptions{People: 2000, Seed: 1})
	m := identity.New(pop.Records, identity.Options{})
	res, err := m.Run(context.Background())
	if err != nil {
		panic(err)
	}
	e := identity.Evaluate(res.Cluster, pop.Person, pop.Hard)
	fmt.Println("precision at least 0.999:", e.Pairwise.Precision >= 0.999)
	fmt.Println("EM converged:", res.Model.Converged)
	// Output:
	// precision at least 0.999: true
	// EM converged: true
}
