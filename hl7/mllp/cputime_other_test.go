//go:build !unix

package mllp

func processCPUSeconds() float64 { return 0 }
